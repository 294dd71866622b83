// visa-hub: "Shared with me" on a hub page. Put <div id="visa-shared-with-me"></div> in the page and load this
// script; it asks the sessions service which instances others shared with her (owner, experiment, her role,
// running or not) and links to each: Lab for collaborators and support, the view-only desktop for guests.
(function () {
  const box = document.getElementById("visa-shared-with-me");
  if (!box) return;
  const service = box.dataset.service || "/services/visa-sessions/";
  async function refresh(retry = true) {
    let data;
    try {
      const response = await fetch(service + "api/shared-with-me", {credentials: "same-origin"});
      if (!response.ok) throw new Error(response.statusText);
      data = await response.json();
    } catch (error) {
      // the first call may cross the service's login started by another script of the page: once more, later
      if (retry) setTimeout(() => refresh(false), 2000);
      return;
    }
    if (!data.shared.length) {
      box.replaceChildren();
      return;
    }
    const heading = document.createElement("h2");
    heading.textContent = "Shared with me";
    const list = document.createElement("ul");
    list.className = "list-group visa-shared-list";
    for (const share of data.shared) {
      const item = document.createElement("li");
      item.className = "list-group-item visa-shared";
      item.dataset.owner = share.owner;
      item.dataset.server = share.server_name;
      item.dataset.role = share.role;
      const text = document.createElement("span");
      const until = share.expires_at ? `, until ${new Date(share.expires_at).toLocaleString()}` : "";
      text.textContent = `${share.owner}'s instance · ${share.experiment} ${share.title} · you are ` +
        `${share.role_title}${until} · ${share.running ? "running" : "not running"} `;
      item.append(text);
      if (share.running) {
        const link = document.createElement("a");
        link.href = share.url;
        link.className = "btn btn-sm btn-primary visa-shared-open";
        link.textContent = share.role === "guest" ? "Watch the desktop" : "Open";
        item.append(link);
      }
      list.append(item);
    }
    box.replaceChildren(heading, list);
  }
  refresh();
  setInterval(refresh, 10000);
})();
