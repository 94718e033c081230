// /play: the tab's own kernel (play.js), or, when the page holds a server-hosted
// session's owner credential (owner-credential.js), that session's terminal
// (native-session.js), after a warning when the credential came in a link this tab
// did not create (owner-notice.js). The server cannot tell them apart: the credential
// never reaches it in the page's address.
import { ownerCredential } from "/static/owner-credential.js";

const owner = ownerCredential();
if (owner === null) {
  await import("/static/play.js");
} else {
  if (!owner.confirmed) {
    document.getElementById("status").textContent = "not attached";
    const { confirmOwner } = await import("/static/owner-notice.js");
    await confirmOwner(owner);
  }
  const { attach } = await import("/static/native-session.js");
  await attach(owner.id);
}
