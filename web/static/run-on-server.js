// The landing page's "Run on the server": ask for a server-hosted session
// (a QEMU VM from the warm pool) and open it at /play?session={id}.
const button = document.getElementById("run-on-server");
const note = document.getElementById("run-on-server-note");

button.addEventListener("click", async () => {
  button.disabled = true;
  note.textContent = "starting a session…";
  try {
    const response = await fetch("/api/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ backend: "qemu" }),
    });
    const body = await response.json();
    if (response.status === 201) {
      location.href = `/play?session=${encodeURIComponent(body.id)}`;
      return;
    }
    const retry = response.headers.get("retry-after");
    note.textContent = body.error + (retry ? ` (try again in ${retry} s)` : "");
  } catch (error) {
    note.textContent = `the server did not answer: ${error}`;
  }
  button.disabled = false;
});
