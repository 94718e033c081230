# The boot manifest: authored as TOML or JSON, validated, then encoded as
# this struct. The kernel hands it to init through BootPackage; init spawns
# the service graph it names.
@0x9898fef329857890;

struct SystemManifest {
  schemaVersion @0 :UInt32;
  binaries @1 :List(Binary);
  initConfig @2 :InitConfig;
  kernelParams @3 :KernelParams;
}

struct Binary {
  name @0 :Text;        # the name spawn asks for
  module @1 :Text;      # the Python module whose main(runtime) runs
  caps @2 :List(BinaryCap);  # the CapSet it expects; spawn refuses grants that
                             # do not fit (none listed: anything goes)
}

struct BinaryCap {
  name @0 :Text;
  interface @1 :Text;   # for an exported endpoint: the interface it serves
  optional @2 :Bool;
}

struct InitConfig {
  init @0 :Text;                 # the binary the kernel starts as init
  services @1 :List(Service);    # spawned by init, in this order
  bundles @2 :List(BundleOffer); # what the broker may put in shell bundles
}

# A cap init offers to the AuthorityBroker for the named profiles' bundles.
struct BundleOffer {
  cap @0 :CapSource;             # the name shells will see, and where it comes from
  profiles @1 :List(Text);       # of "anonymous", "guest", "operator"
}

struct Service {
  name @0 :Text;
  binary @1 :Text;
  caps @2 :List(CapSource);      # the child's CapSet, in this order
  exports @3 :List(Export);      # endpoints this service owns and others may import
  freshSession @4 :Bool;         # start it in a new anonymous session (shells)
}

# Each export becomes a raw Endpoint in the exporting service's own CapSet,
# under `name`; importers get its ClientEndpoint, typed as `interface`.
struct Export {
  name @0 :Text;
  interface @1 :Text;            # an interface name from the schema bundle
}

struct CapSource {
  name @0 :Text;                 # the name the child sees
  source :union {
    kernel @1 :KernelCap;        # a capability init received from the kernel
    import @2 :ServiceExport;    # the client facet of another service's export
    terminal @3 :Text;           # a terminal the host attached under this name
                                 # (a host may attach several: one shell each)
  }
}

enum KernelCap {
  console @0;
  timer @1;
  entropy @2;
  systemInfo @3;
  processSpawner @4;
  bootPackage @5;
  terminal @6;
  sessionManager @7;
  authorityBroker @8;
  brokerAdmin @9;
  manual @10;
  systemMonitor @11;   # sees the whole system; attenuate with SystemMonitor.subtree
  log @12;
  languageModel @13;   # a model the host provides (native hosts), absent elsewhere
  agentPort @14;       # outside agents' requests (MCP, REST), for the shell to serve
}

struct ServiceExport {
  service @0 :Text;
  export @1 :Text;
}

struct KernelParams {
  motd @0 :Text;
  hostname @1 :Text = "capos";
}
