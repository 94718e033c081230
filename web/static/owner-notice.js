// What the page says when it opens with an owner link this tab did not create (someone
// pasted the owner's address to "share" it): a warning before it takes control, and, once
// the person continues as the owner, an offer to make the view link they should share.
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

// Resolves once the person chooses to continue as the owner (they may leave instead).
export function confirmOwner(owner) {
  const heading = el("h2", { id: "owner-notice-title", textContent: "This link controls a live session" });
  const text = el("p", { id: "owner-notice-text", textContent:
    "This is the owner's link of a live session: whoever opens it controls the session. "
    + "Ask the owner for a view link instead." });
  const proceed = el("button", { id: "owner-continue", type: "button", className: "button",
    textContent: "Continue as the owner" });
  const leave = el("a", { id: "owner-leave", href: "/", className: "link", textContent: "Leave" });
  const notice = el("section", { id: "owner-notice", className: "owner-notice" },
    heading, text, el("p", {}, proceed, " ", leave));
  notice.setAttribute("role", "alertdialog");
  notice.setAttribute("aria-labelledby", heading.id);
  notice.setAttribute("aria-describedby", text.id);
  notice.tabIndex = -1; // focused, so a screen reader reads it before anything else
  document.querySelector("header").after(notice);
  notice.focus();
  return new Promise((resolve) => {
    proceed.addEventListener("click", () => {
      owner.confirm();
      notice.replaceWith(viewLinkOffer(owner.id));
      resolve();
    });
  });
}

// "Share a view link, not this page": makes one (server/shareapi.py) and shows it to copy.
function viewLinkOffer(id) {
  const say = el("span", { id: "view-offer-message", role: "status" });
  const create = el("button", { id: "view-offer-create", type: "button", className: "button",
    textContent: "Create a view link" });
  const close = el("button", { id: "view-offer-close", type: "button", textContent: "dismiss" });
  const offer = el("section", { id: "view-offer", className: "owner-notice" },
    el("p", { textContent: "To show this session to someone, share a view link: "
      + "they watch, and cannot type. Never share this page's address." }),
    el("p", {}, create, " ", close, " ", say));
  offer.setAttribute("aria-label", "share a view link");
  close.addEventListener("click", () => offer.remove());
  create.addEventListener("click", async () => {
    create.disabled = true;
    try {
      const response = await fetch(`/api/sessions/${encodeURIComponent(id)}/shares`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ mode: "view" }),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error);
      create.replaceWith(copyable(answer.url, say));
    } catch (error) {
      say.textContent = `no view link: ${error.message}`;
      create.disabled = false;
    }
  });
  return offer;
}

function copyable(url, say) {
  const field = el("input", { id: "view-offer-url", type: "text", readOnly: true, value: url,
    size: Math.min(url.length, 60) });
  field.setAttribute("aria-label", "view link");
  const copy = el("button", { id: "view-offer-copy", type: "button", className: "button",
    textContent: "copy" });
  copy.addEventListener("click", async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(url);
      say.textContent = "copied";
    } catch {
      say.textContent = "selected: press Ctrl+C (⌘C) to copy";
    }
  });
  return el("span", {}, field, " ", copy);
}
