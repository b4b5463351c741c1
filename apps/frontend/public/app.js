// The example front-end: a token from the identity provider (/auth), then this
// site's rows from the API (/api). Both sit behind the same Kong as this page.
const out = document.getElementById("out");
document.getElementById("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = new FormData(ev.target).get("user");
  const tok = await fetch("/auth/token", { method: "POST", body: JSON.stringify({ user }) }).then((r) => r.json());
  const who = await fetch("/auth/verify", { headers: { Authorization: "Bearer " + tok.token } }).then((r) => r.json());
  const rows = await fetch("/api/rows?limit=5").then((r) => r.json()).catch(() => ({ error: "api unreachable" }));
  out.textContent = JSON.stringify({ who, rows }, null, 2);
});
