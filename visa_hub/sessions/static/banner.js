// visa-hub: lifetime warnings on a hub page. Put <div id="visa-lifetime-banner"></div> in the page and load this
// script; it asks the sessions service about her running instances and shows what is coming (end of life,
// inactivity stop, membership ended, pending extension request) with a link to extend.
(function () {
  const box = document.getElementById("visa-lifetime-banner");
  if (!box) return;
  const service = box.dataset.service || "/services/visa-sessions/";
  function left(seconds) {
    const m = Math.floor(seconds / 60), h = Math.floor(m / 60);
    return h >= 48 ? `${Math.floor(h / 24)} days` : h > 0 ? `${h} h ${m % 60} min` : `${Math.max(m, 1)} min`;
  }
  async function refresh(retries = 3) {
    let data;
    try {
      const response = await fetch(service + "api/instances", {credentials: "same-origin"});
      if (!response.ok) throw new Error(response.statusText);
      data = await response.json();
    } catch (error) {
      // the first call may cross the service's login started by another script of the page (both follow the
      // service's OAuth redirects at once and one loses the state cookie): again soon, not at the next refresh
      if (retries > 0) setTimeout(() => refresh(retries - 1), 2000);
      return;
    }
    box.replaceChildren();
    for (const instance of data.instances) {
      const notes = instance.warnings.map((w) => w.message);
      if (instance.extension.pending) {
        notes.push(`Your extension request (until ${new Date(instance.extension.pending.requested_expires_at)
          .toLocaleString()}) is waiting for an administrator.`);
      }
      if (!notes.length) continue;
      const alert = document.createElement("div");
      alert.className = "alert " + (instance.level > 1 ? "alert-danger" : "alert-warning") + " visa-lifetime-alert";
      alert.setAttribute("role", "alert");
      alert.dataset.server = instance.server_name;
      const title = document.createElement("strong");
      title.textContent = `${instance.experiment}${instance.server_name ? " (" + instance.server_name + ")" : ""}: ` +
        `ends in ${left(instance.seconds_left)}. `;
      alert.append(title, notes.join(" "), " ");
      const extend = document.createElement("a");
      extend.href = service;
      extend.className = "alert-link";
      extend.textContent = "Extend or see details";
      alert.append(extend);
      box.append(alert);
    }
  }
  refresh();
  setInterval(() => refresh(0), 30000);
})();
