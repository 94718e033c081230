// Where the page keeps a server-hosted session's owner credential: its id, a 128-bit
// secret whoever holds it controls the session with. It never stays in the address bar,
// so it is not in history, bookmarks or a pasted address. It reaches /play by one of:
//   - a hand-off from this tab (run-on-server.js): sessionStorage, read once;
//   - an owner link, /play#session=ID (a fragment: never sent to the server, never in a
//     Referer), or an old /play?session=ID bookmark; both leave the address at once;
//   - the history entry's state, so a reload or back/forward keeps the session, while a
//     plain /play in the same tab opens the tab's own kernel.
// An id that came in a link this tab did not create is unconfirmed until the person says
// to continue as the owner (owner-notice.js).
const HANDOFF = "capos-owner-handoff";
const CREATED = "capos-owner-created"; // ids this tab created, as a JSON list

function created() {
  try {
    return JSON.parse(sessionStorage.getItem(CREATED) || "[]");
  } catch {
    return [];
  }
}

// Note a session this tab created: a tab opened from this one gets a copy of the note.
export function noteCreated(id) {
  sessionStorage.setItem(CREATED, JSON.stringify([...created(), id]));
}

// Called with a session this tab just created, before it opens /play.
export function handOver(id) {
  noteCreated(id);
  sessionStorage.setItem(HANDOFF, id);
}

// {id, confirmed, confirm()} for the session this page is the owner's page of, or null
// for the tab's own kernel. Takes the id off the address bar before returning.
export function ownerCredential() {
  const url = new URL(location.href);
  const linked = new URLSearchParams(url.hash.slice(1)).get("session")
    || url.searchParams.get("session");
  const handed = sessionStorage.getItem(HANDOFF);
  sessionStorage.removeItem(HANDOFF);
  const state = history.state || {};
  let owner = null;
  if (linked) {
    url.hash = "";
    url.searchParams.delete("session");
    owner = { id: linked, confirmed: created().includes(linked) };
  } else if (handed) {
    owner = { id: handed, confirmed: true };
  } else if (state.ownerSession) {
    owner = { id: state.ownerSession, confirmed: state.ownerConfirmed === true };
  }
  if (owner === null) return null;
  const keep = (confirmed, address) => history.replaceState(
    { ...history.state, ownerSession: owner.id, ownerConfirmed: confirmed }, "", address);
  keep(owner.confirmed, url);
  return { ...owner, confirm: () => keep(true, location.href) };
}
