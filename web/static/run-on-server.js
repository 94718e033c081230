// "Run on the server": ask for a server-hosted session (a QEMU VM from the warm pool)
// and open its owner's page, /play (plus `query`, e.g. a tour), handing it the session's
// id out of the address (owner-credential.js). Used by the landing page, its tour list,
// and the playground when this browser cannot run the tab kernel.
import { handOver } from "/static/owner-credential.js";

export async function openOnServer(note, query = "") {
  note.textContent = "starting a session…";
  try {
    const response = await fetch("/api/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ backend: "qemu" }),
    });
    const body = await response.json();
    if (response.status === 201) {
      handOver(body.id);
      location.href = query ? `/play?${query}` : "/play";
      return;
    }
    const retry = response.headers.get("retry-after");
    note.textContent = body.error + (retry ? ` (try again in ${retry} s)` : "");
  } catch (error) {
    note.textContent = `the server did not answer: ${error}`;
  }
}

// A button that does it, disabled while it asks.
export function serverButton(label, note, query = "") {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button";
  button.textContent = label;
  button.addEventListener("click", async () => {
    button.disabled = true;
    await openOnServer(note, query);
    button.disabled = false;
  });
  return button;
}
