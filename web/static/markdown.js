// The little markdown a tour step is written in (demos/README.md): paragraphs, `code`,
// fenced code blocks, **bold** and *emphasis*. Text is escaped first, so a tour file can
// never put markup of its own on the page.
const escape = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function inline(text) {
  return escape(text)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>");
}

export function renderMarkdown(source) {
  const html = [];
  const blocks = `\n${source.trim()}`.split(/\n```/);
  blocks.forEach((block, index) => {
    if (index % 2 === 1) { // inside a fence: the first line names the language
      const body = block.slice(block.indexOf("\n") + 1);
      html.push(`<pre><code>${escape(body)}</code></pre>`);
      return;
    }
    for (const paragraph of block.split(/\n\s*\n/)) {
      if (paragraph.trim()) html.push(`<p>${inline(paragraph.trim())}</p>`);
    }
  });
  return html.join("\n");
}
