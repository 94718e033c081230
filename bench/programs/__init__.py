"""Programs the kernel benchmark boots: each measures itself and prints one BENCH line."""
