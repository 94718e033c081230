// The owner's "fork" button: a new session whose VM is a copy of this one's as it runs now
// (POST /api/sessions/{id}/fork), opened in a new tab as its owner. The fork's id, its own
// owner credential, goes into the new tab's address as an owner link's fragment, and this
// tab notes it as one it created (the new tab gets a copy of that note), so the new tab
// takes it over without asking and takes it off its address bar (owner-credential.js).
import { noteCreated } from "/static/owner-credential.js";

export function forkButton(sessionId, status) {
  const button = document.createElement("button");
  button.type = "button";
  button.id = "fork";
  button.textContent = "fork";
  button.title = "a copy of this session as it is now (programs, screen), in a new tab";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}/fork`,
        { method: "POST" });
      const body = await response.json();
      if (response.status !== 201) {
        const retry = response.headers.get("retry-after");
        status.textContent = body.error + (retry ? ` (try again in ${retry} s)` : "");
        return;
      }
      noteCreated(body.id);
      const address = `/play#session=${encodeURIComponent(body.id)}`;
      if (!window.open(address, "_blank")) { // a blocked pop-up: a link to open it by
        const link = Object.assign(document.createElement("a"),
          { href: address, target: "_blank", textContent: "open the fork" });
        status.replaceChildren("forked: ", link);
      }
    } catch (error) {
      status.textContent = `the server did not answer: ${error}`;
    } finally {
      button.disabled = false;
    }
  });
  document.querySelector("header").append(button);
}
