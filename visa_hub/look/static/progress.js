// The progress page of a starting instance: named steps, progress bar, the whole event log (never collapsed).
// Events come from JupyterHub's progress stream (the spawner's ProgressLog, spawners/progress.py).
"use strict";

(() => {
  const root = document.getElementById("visa-progress");
  if (!root) return;
  const xsrf = (window.jhdata && window.jhdata.xsrf_token) || "";
  const steps = JSON.parse(root.dataset.steps);
  const bar = document.getElementById("progress-bar");
  const message = document.getElementById("progress-message");
  const log = document.getElementById("progress-log");
  const clock = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", second: "2-digit"});

  function stepOf(event) {
    if (event.ready) return steps[steps.length - 1].key;
    if (event.step) return event.step;
    const progress = event.progress || 0;
    return steps.filter((s) => progress >= s.starts_at).pop().key;
  }

  function markSteps(current, failed) {
    let reached = false;
    for (const item of document.querySelectorAll("#visa-steps li")) {
      let status;
      if (item.dataset.step === current) {
        status = failed ? "failed" : (current === steps[steps.length - 1].key ? "done" : "current");
        reached = true;
      } else {
        status = reached ? "pending" : "done";
      }
      item.dataset.status = status;
      const words = {done: ": done", current: ": in progress", pending: ": to do", failed: ": failed"};
      item.querySelector(".visa-step-status").textContent = words[status];
    }
  }

  const source = new EventSource(root.dataset.progressUrl);
  source.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.progress !== undefined) {
      bar.style.width = `${event.progress}%`;
      bar.setAttribute("aria-valuenow", String(event.progress));
    }
    const text = event.message || "";
    if (text) {
      message.textContent = text;
      const time = document.createElement("time");
      time.textContent = clock.format(new Date());
      const item = document.createElement("li");
      item.append(time, text);
      log.append(item);
      log.scrollTop = log.scrollHeight;
    }
    markSteps(stepOf(event), Boolean(event.failed));
    if (event.ready) {
      source.close();
      window.location.reload(); // the hub now sends her on to JupyterLab
    }
    if (event.failed) {
      source.close();
      bar.classList.add("bg-danger");
      message.setAttribute("role", "alert");
      document.getElementById("stop-server-btn").hidden = true;
    }
  };

  document.getElementById("stop-server-btn").addEventListener("click", async (e) => {
    const button = e.currentTarget, status = document.getElementById("stop-server-status");
    button.disabled = true;
    status.textContent = "Cancelling…";
    const response = await fetch(root.dataset.serverApi, {method: "DELETE", headers: {"X-XSRFToken": xsrf}});
    if (response.ok) {
      source.close();
      status.textContent = "Cancelled. Back to your instances…";
      window.location.assign(root.dataset.home);
    } else {
      status.textContent = `Could not cancel: ${response.status} ${response.statusText}`;
      button.disabled = false;
    }
  });
  window._jupyterhub_page_loaded = true;
})();
