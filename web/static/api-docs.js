// /docs: the REST API's OpenAPI reference, drawn by the pinned swagger-ui the server
// serves itself (no CDN). The same operations are MCP tools at /mcp.
const versions = await (await fetch("/vendor/versions.json")).json();
const base = `/vendor/swagger-ui-${versions["swagger-ui"]}`;
const css = document.createElement("link");
css.rel = "stylesheet";
css.href = `${base}/swagger-ui.css`;
document.head.append(css);
await new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = `${base}/swagger-ui-bundle.js`;
  script.onload = resolve;
  script.onerror = () => reject(new Error(`cannot load ${script.src}`));
  document.head.append(script);
});
window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
