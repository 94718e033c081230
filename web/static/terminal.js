// The xterm.js terminal every page opens: the tab's (play.js), a server-hosted
// session's (native-session.js) and a share link's (share.js). It refits whenever its
// box changes: a window resize, or a panel (monitor, tour) opening beside it.
// `options` go to xterm's Terminal (a view link's is read-only).
export async function openTerminal(versions, options = {}) {
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `/vendor/xterm-${versions.xterm}/css/xterm.css`;
  document.head.append(css);
  const { Terminal } = await import(`/vendor/xterm-${versions.xterm}/lib/xterm.mjs`);
  const { FitAddon } = await import(
    `/vendor/xterm-addon-fit-${versions["xterm-addon-fit"]}/lib/addon-fit.mjs`);
  const term = new Terminal({ cursorBlink: true, fontSize: 15, ...options });
  const fit = new FitAddon();
  term.loadAddon(fit);
  const box = document.getElementById("terminal");
  term.open(box);
  fit.fit();
  new ResizeObserver(() => fit.fit()).observe(box);
  return term;
}
