// The instance dashboard (the hub's home page): a card per instance, kept current from the hub's APIs.
//  - GET  {hub}api/visa/users/<user>/instances   what each instance is (visa_hub/dashboard/api.py)
//  - POST/DELETE {hub}api/users/<user>/servers/<name>   start (with the same settings) / stop / remove
//  - EventSource {progress_url}   progress of a starting instance (the spawner's named steps)
// Requests carry the page's XSRF token, as JupyterHub's own pages do.
"use strict";

(() => {
  const root = document.getElementById("visa-dashboard");
  if (!root) return;
  const xsrf = (window.jhdata && window.jhdata.xsrf_token) || "";
  const cards = document.getElementById("visa-cards");
  const announce = document.getElementById("visa-announce");
  const errorBox = document.getElementById("visa-dashboard-error");
  const STATE_WORDS = {
    running: "Running", starting: "Starting", stopping: "Stopping", stopped: "Stopped", failed: "Failed to start",
  };
  const streams = new Map(); // server name -> EventSource of a starting instance
  const progress = new Map(); // server name -> {progress, message}
  let clockOffset = 0; // server time - local time, in ms
  let timer = null;
  let lastStates = new Map();

  const when = new Intl.DateTimeFormat(undefined, {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for") {
        node.setAttribute(key, value === true ? "" : value);
      } else node[key] = value;
    }
    for (const child of children.flat(Infinity)) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: {"X-XSRFToken": xsrf, ...(body ? {"Content-Type": "application/json"} : {})},
      body: body ? JSON.stringify(body) : undefined,
      credentials: "same-origin",
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response.status === 204 ? null : response.json().catch(() => null);
  }

  function say(text) {
    announce.textContent = text;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  // ------------------------------------------------------------------ time
  function timeLeft(expiresAt) {
    const ms = new Date(expiresAt).getTime() - (Date.now() + clockOffset);
    if (ms <= 0) return "expired";
    const minutes = Math.floor(ms / 60000), hours = Math.floor(minutes / 60), days = Math.floor(hours / 24);
    if (days >= 1) return `${days} d ${hours % 24} h left`;
    if (hours >= 1) return `${hours} h ${minutes % 60} min left`;
    return `${Math.max(minutes, 1)} min left`;
  }

  function tickTimes() {
    for (const node of document.querySelectorAll("[data-expires-at]")) {
      node.textContent = timeLeft(node.dataset.expiresAt);
    }
  }

  // ------------------------------------------------------------------ cards
  function serverApi(instance) {
    return instance.links.server_api;
  }

  function detailRows(instance) {
    const s = instance.session;
    const rows = [];
    if (s) {
      const instrument = s.instrument.name + (s.instrument.technique ? ` (${s.instrument.technique})` : "");
      rows.push(["Instrument", instrument], ["Flavour", s.flavour.label], ["Image", s.image.title]);
      if (instance.state === "running" || instance.state === "starting") {
        if (s.expires_at) {
          rows.push(["Time left", el("span", {},
            el("span", {class: "visa-time-left", "data-expires-at": s.expires_at, text: timeLeft(s.expires_at)}),
            el("span", {class: "visa-muted", text: ` · until ${when.format(new Date(s.expires_at))}`}))]);
        }
      } else if (s.lifetime_hours) {
        rows.push(["Lifetime", `${s.lifetime_hours} hours when started`]);
      }
    }
    const members = instance.members.map((m) => `${m.name} (${m.role})`).join(", ");
    rows.push(["Members", el("span", {class: "visa-members", text: members})]);
    return el("dl", {}, rows.map(([term, value]) => [el("dt", {text: term}), el("dd", {}, value)]));
  }

  function button(action, label, kind, extra = {}) {
    return el("button", {type: "button", class: `btn btn-sm ${kind}`, "data-action": action, ...extra}, label);
  }

  function link(action, label, href, kind) {
    return el("a", {class: `btn btn-sm ${kind}`, href, "data-action": action}, label);
  }

  function actions(instance) {
    const what = instance.session ? instance.session.experiment.code : instance.label;
    switch (instance.state) {
      case "running":
        return [
          link("lab", "Open Lab", instance.links.lab, "btn-primary"),
          link("desktop", "Open Desktop", instance.links.desktop, "btn-outline-primary"),
          link("relaunch", "Relaunch…", instance.links.relaunch, "btn-outline-secondary"),
          button("stop", "Stop…", "btn-outline-danger", {"aria-label": `Stop the ${what} instance`}),
        ];
      case "starting":
        return [
          link("progress", "Show progress", `${root.dataset.hub}spawn-pending/${encodeURIComponent(root.dataset.user)}/${encodeURIComponent(instance.name)}`, "btn-outline-primary"),
          button("stop", "Cancel…", "btn-outline-danger", {"aria-label": `Cancel the start of the ${what} instance`}),
        ];
      case "stopping":
        return [el("span", {class: "visa-muted", text: "Stopping…"})];
      default: // stopped, failed
        return [
          button("start", "Start again", "btn-primary", {"aria-label": `Start the ${what} instance again with the same settings`}),
          link("settings", "Change settings", instance.links.spawn, "btn-outline-primary"),
          button("remove", "Remove…", "btn-outline-secondary", {"aria-label": `Remove the ${what} instance from this list`}),
        ];
    }
  }

  function progressBlock(instance) {
    if (instance.state !== "starting") return null;
    const known = progress.get(instance.name) || {progress: 0, message: "Waiting for the first progress report…"};
    const bar = el("div", {
      class: "progress-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(known.progress), "aria-label": `Start of ${instance.label}`,
    });
    bar.style.width = `${known.progress}%`;
    return el("div", {class: "visa-card__progress"},
      el("div", {class: "progress"}, bar),
      el("p", {class: "visa-card__message mb-0", text: known.message}));
  }

  function cardSignature(instance) {
    const s = instance.session;
    return JSON.stringify([instance.state, s && s.expires_at, s && s.flavour.label, instance.failure,
                           instance.members.length]);
  }

  function renderCard(item, instance) {
    const signature = cardSignature(instance);
    if (item.dataset.signature === signature) return;
    const focused = item.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    const s = instance.session;
    const titleId = `visa-card-title-${instance.name || "default"}`;
    const heading = el("h2", {id: titleId},
      el("span", {class: "visa-card__title", text: s ? s.experiment.code : instance.label}));
    const state = el("span", {class: "visa-state", "data-state": instance.state, text: STATE_WORDS[instance.state]});
    const stateRow = el("p", {class: "mb-0"}, state,
      instance.state === "running" && instance.started
        ? el("span", {class: "visa-muted", text: ` · since ${when.format(new Date(instance.started))}`}) : null);
    const children = [
      heading,
      s && s.experiment.title ? el("p", {class: "mb-0", text: s.experiment.title}) : null,
      el("p", {class: "visa-card__name mb-0", text: `instance ${instance.label}`}),
      stateRow,
      instance.failure ? el("p", {class: "alert alert-danger py-1 px-2 mb-0", role: "note", text: instance.failure}) : null,
      progressBlock(instance),
      detailRows(instance),
      el("div", {class: "visa-card__actions"}, actions(instance)),
      el("div", {class: "visa-confirm", hidden: true}),
    ];
    item.replaceChildren(...children.filter(Boolean));
    item.setAttribute("aria-labelledby", titleId);
    item.dataset.signature = signature;
    item.dataset.state = instance.state;
    item._instance = instance;
    if (focused) {
      const again = item.querySelector(`[data-action="${focused}"]`) || item.querySelector("[data-action]");
      if (again) again.focus();
    }
  }

  function updateProgress(name) {
    const item = cards.querySelector(`li[data-server="${CSS.escape(name)}"]`);
    const known = progress.get(name);
    if (!item || !known) return;
    const bar = item.querySelector(".progress-bar");
    const message = item.querySelector(".visa-card__message");
    if (bar) {
      bar.style.width = `${known.progress}%`;
      bar.setAttribute("aria-valuenow", String(known.progress));
    }
    if (message) message.textContent = known.message;
  }

  function follow(instance) {
    if (streams.has(instance.name)) return;
    const url = new URL(instance.progress_url, location.href);
    url.searchParams.set("_xsrf", xsrf);
    const source = new EventSource(url);
    streams.set(instance.name, source);
    source.onmessage = (event) => {
      const data = JSON.parse(event.data);
      const previous = progress.get(instance.name) || {progress: 0, message: ""};
      progress.set(instance.name, {
        progress: data.progress === undefined ? previous.progress : data.progress,
        message: data.message || previous.message,
      });
      updateProgress(instance.name);
      if (data.ready || data.failed) {
        source.close();
        streams.delete(instance.name);
        refresh();
      }
    };
    source.onerror = () => {
      source.close();
      streams.delete(instance.name);
    };
  }

  // ------------------------------------------------------------------ the whole page
  function renderQuota(quota) {
    const line = document.getElementById("visa-quota-line");
    const parts = [];
    const used = quota.used, limits = quota.limits;
    const part = (value, limit, unit) => limit === null || limit === undefined ? null : `${value} of ${limit} ${unit}`;
    parts.push(part(used.instances, limits.instances, "instances"), part(used.cpus, limits.cpus, "CPUs"),
               part(used.memory_gb, limits.memory_gb, "GB"), part(used.gpus, limits.gpus, "GPUs"));
    const text = parts.filter(Boolean).join(" · ");
    line.textContent = text ? `Running now: ${text} (your quota “${quota.name}”)` : "";
  }

  function renderNew(data) {
    const button = document.getElementById("visa-new-instance");
    const first = data.new_instances[0];
    button.hidden = !first;
    if (first) button.href = first.url;
    if (data.quota.full) {
      button.title = "Your quota is reached: stop an instance first";
    } else {
      button.removeAttribute("title");
    }
    // the backend cannot start another one now (e.g. her home is a volume another instance holds): say why
    const conflict = document.getElementById("visa-new-conflict");
    conflict.textContent = data.new_instance_conflict || "";
    conflict.hidden = !data.new_instance_conflict;
    const empty = document.getElementById("visa-empty");
    empty.hidden = data.instances.length > 0;
    const list = document.getElementById("visa-empty-experiments");
    list.replaceChildren(...data.new_instances.map((e) => el("li", {},
      el("a", {class: "btn btn-outline-primary text-start w-100", href: e.url},
        el("strong", {text: e.code}), ` — ${e.title} `, el("span", {class: "visa-muted", text: `(${e.instrument})`})))));
  }

  function render(data) {
    clockOffset = new Date(data.now).getTime() - Date.now();
    document.getElementById("visa-loading").hidden = true;
    renderQuota(data.quota);
    renderNew(data);
    const seen = new Set();
    data.instances.forEach((instance, index) => {
      seen.add(instance.name);
      let item = cards.querySelector(`li[data-server="${CSS.escape(instance.name)}"]`);
      if (!item) {
        item = el("li", {class: "visa-card", "data-server": instance.name});
      }
      if (cards.children[index] !== item) cards.insertBefore(item, cards.children[index] || null);
      const before = lastStates.get(instance.name);
      if (before && before !== instance.state) {
        say(`${instance.session ? instance.session.experiment.code : instance.label}: ${STATE_WORDS[instance.state]}`);
      }
      lastStates.set(instance.name, instance.state);
      renderCard(item, instance);
      if (instance.state === "starting") follow(instance);
    });
    for (const item of [...cards.children]) {
      if (!seen.has(item.dataset.server)) item.remove();
    }
    const busy = data.instances.some((i) => i.state === "starting" || i.state === "stopping");
    schedule(busy ? 2000 : 10000);
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  let refreshing = null;
  async function refresh() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        render(await api("GET", root.dataset.api));
        showError("");
      } catch (error) {
        showError(`Could not read your instances: ${error.message}. Retrying…`);
        schedule(5000);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  // ------------------------------------------------------------------ actions
  function confirmIn(item, question, confirmLabel, run) {
    const box = item.querySelector(".visa-confirm");
    const yes = el("button", {type: "button", class: "btn btn-sm btn-danger", "data-action": "confirm"}, confirmLabel);
    const no = el("button", {type: "button", class: "btn btn-sm btn-outline-secondary", "data-action": "cancel"}, "Keep it");
    const close = () => {
      box.hidden = true;
      box.replaceChildren();
      const back = item.querySelector(".visa-card__actions [data-action]");
      if (back) back.focus();
    };
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        await run();
      } catch (error) {
        box.replaceChildren(el("p", {class: "text-danger mb-0", role: "alert", text: error.message}));
        return;
      }
      box.hidden = true;
      refresh();
    });
    no.addEventListener("click", close);
    box.onkeydown = (event) => { if (event.key === "Escape") close(); };
    box.replaceChildren(el("p", {class: "mb-2", text: question}), el("div", {class: "d-flex gap-2"}, yes, no));
    box.hidden = false;
    yes.focus();
  }

  cards.addEventListener("click", async (event) => {
    const target = event.target.closest("button[data-action]");
    if (!target) return;
    const item = target.closest("li.visa-card");
    const instance = item._instance;
    const what = instance.session ? `${instance.session.experiment.code} instance` : `instance ${instance.label}`;
    switch (target.dataset.action) {
      case "stop":
        confirmIn(item, `Stop the ${what}? Running notebooks, terminals and the desktop end; the files in your home stay.`,
          instance.state === "starting" ? "Cancel the start" : "Stop instance",
          () => api("DELETE", serverApi(instance)));
        break;
      case "remove":
        confirmIn(item, `Remove the ${what} from this list? Your files stay in your home.`, "Remove",
          () => api("DELETE", serverApi(instance), {remove: true}));
        break;
      case "start":
        target.disabled = true;
        try {
          await api("POST", serverApi(instance), instance.user_options || {});
          say(`Starting the ${what}`);
        } catch (error) {
          showError(`Could not start the ${what}: ${error.message}`);
        }
        refresh();
        break;
      default:
        break;
    }
  });

  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  setInterval(tickTimes, 30000);
  refresh();
})();
