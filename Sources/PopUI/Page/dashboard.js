// pop's dashboard: plain JavaScript, no build step. The server pushes the fleet as server-sent events
// (/api/events): a `fleet` event with the whole model, then `rows` events with only the services and machines that
// changed. Every state-changing request carries the session's CSRF token.
"use strict";

const state = {
  csrf: null,
  loginWith: "token",   // what the login form asks for: "token" or "password"
  fleet: null,          // the model: {store, machines, services, problems}
  clockOffset: 0,       // server time minus this page's time, in ms
  cells: new Map(),     // "service\u0000machine" -> {td, html}
  rows: new Map(),      // service -> tr
  events: null,         // the EventSource
  detail: null,         // {kind: "service"|"instance", service, machine}
  journalAbort: null,   // stops the open view's journal stream (an instance's log, a service's events)
  interactive: false,
};

const $ = (id) => document.getElementById(id);

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function dash(value) {
  return value === null || value === undefined ? "—" : value;
}

// MARK: requests

async function api(path, body) {
  const options = body === undefined
    ? { headers: { Accept: "application/json" } }
    : { method: "POST", headers: { "Content-Type": "application/json", "X-Pop-CSRF": state.csrf || "" }, body: JSON.stringify(body) };
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let json = {};
  try { json = await response.json(); } catch (_) { json = {}; }
  if (response.status === 401 && path !== "/api/login") {
    showLogin();
  }
  if (!response.ok) {
    const error = new Error(json.error || `The server answered ${response.status}.`);
    error.hint = json.hint;
    error.status = response.status;
    throw error;
  }
  return json;
}

function toast(text) {
  const element = $("toast");
  element.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { element.textContent = ""; }, 6000);
}

function failed(error) {
  toast(error.hint ? `${error.message} ${error.hint}` : error.message);
}

// MARK: login

function showLogin() {
  closeEvents();
  $("fleet").hidden = true;
  $("details").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  setConnection("Not logged in", "lost");
  const token = state.loginWith !== "password";
  for (const field of document.querySelectorAll("#login-form [data-kind]")) {
    field.hidden = field.dataset.kind !== (token ? "token" : "password");
  }
  $("login-why").textContent = token
    ? "Paste the token from the address `pop ui` printed, or open that address."
    : "This namespace is protected: log in with its user and password (as set by pop init --auth).";
  (token ? $("login-token") : $("login-user")).focus();
}

async function logIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const tokenMode = !$("login-token").parentElement.hidden;
  const body = tokenMode
    ? { token: $("login-token").value }
    : { user: $("login-user").value, password: $("login-password").value };
  try {
    const session = await api("/api/login", body);
    $("login-password").value = "";
    $("login-token").value = "";
    startSession(session);
  } catch (error) {
    $("login-error").textContent = error.hint ? `${error.message} ${error.hint}` : error.message;
  }
}

async function logOut() {
  try { await api("/api/logout", {}); } catch (_) { /* the session is gone either way */ }
  state.csrf = null;
  showLogin();
}

function startSession(session) {
  if (!state.interactive) performance.mark("pop-session");
  state.csrf = session.csrf;
  $("login").hidden = true;
  $("fleet").hidden = false;
  $("logout").hidden = false;
  if (session.store) $("store").textContent = session.store;
  openEvents();
}

async function begin() {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("details-close").addEventListener("click", closeDetails);
  $("grid").addEventListener("click", gridClicked);
  setInterval(tickUptimes, 1000);

  // A token in the address's fragment (never sent to the server in a request line) logs in once, then leaves the
  // address bar and the history.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", location.pathname);
  let session = await api("/api/session");
  state.loginWith = session.loginWith;
  if (!session.authenticated && token) {
    try {
      session = await api("/api/login", { token });
    } catch (error) {
      showLogin();
      $("login-error").textContent = error.message;
      return;
    }
  }
  if (!session.authenticated) {
    showLogin();
    return;
  }
  startSession(session);
}

// MARK: the event stream

function setConnection(text, kind) {
  const element = $("connection");
  element.textContent = text;
  element.className = `connection ${kind || ""}`;
}

function closeEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

function openEvents() {
  closeEvents();
  const events = new EventSource("/api/events");
  state.events = events;
  events.addEventListener("open", () => setConnection("Live", "live"));
  events.addEventListener("fleet", (event) => {
    if (!state.interactive) performance.mark("pop-fleet-received");
    const message = JSON.parse(event.data);
    state.clockOffset = message.now - Date.now();
    state.fleet = message.fleet;
    renderFleet();
    setConnection("Live", "live");
  });
  events.addEventListener("rows", (event) => {
    const message = JSON.parse(event.data);
    state.clockOffset = message.now - Date.now();
    applyRows(message);
  });
  events.addEventListener("problem", (event) => {
    const message = JSON.parse(event.data);
    showProblems([message.error]);
  });
  events.addEventListener("error", async () => {
    if (events.readyState === EventSource.CLOSED) {
      setConnection("Disconnected", "lost");
      // A closed stream is a refused one (the session ended) or a server that went away.
      try {
        const session = await api("/api/session");
        if (!session.authenticated) showLogin();
        else setTimeout(() => { if (state.events === events) openEvents(); }, 2000);
      } catch (_) { /* the server is gone: the status says so */ }
    } else {
      setConnection("Reconnecting…", "lost");
    }
  });
}

// MARK: the grid

function uptime(started) {
  if (!started) return "—";
  let seconds = Math.max(0, Math.floor((Date.now() + state.clockOffset - started) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let amount = value;
  let unit = 0;
  while (amount >= 1024 && unit < units.length - 1) { amount /= 1024; unit += 1; }
  return `${amount.toFixed(amount < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)}%`;
}

function cellKey(service, machine) {
  return `${service}\u0000${machine}`;
}

function cellHTML(service, instance) {
  const pid = instance.pid ?? null;
  // An uptime only while a process exists.
  const started = pid !== null ? instance.started : null;
  const label = `${service} on ${instance.machine}: ${instance.state}${pid !== null ? `, PID ${pid}` : ""}${instance.current ? "" : ", old signature"}`;
  return `<button type="button" class="cell-button" data-service="${esc(service)}" data-machine="${esc(instance.machine)}" aria-label="${esc(label)}">`
    + `<span class="state">${esc(instance.state)}</span>`
    + (!instance.current && instance.signature ? `<span class="old-mark" title="runs signature ${esc(instance.signature)}, not the service's current one">old</span>` : "")
    + `<span class="facts">PID <span class="pid">${esc(dash(pid))}</span></span>`
    + `<span class="facts"><span class="uptime" data-started="${esc(started ?? "")}">${esc(uptime(started))}</span> · ↻ <span class="restarts">${esc(dash(instance.restarts))}</span></span>`
    + `<span class="facts">CPU ${esc(percent(instance.cpuPercent))} · mem ${esc(bytes(instance.memoryBytes))}</span>`
    + `</button>`;
}

// A service deployed by count: how many run its current configuration of how many it should have.
function countHTML(service) {
  if (service.desired === null || service.desired === undefined) return "";
  const short = service.running < service.desired;
  return `<span class="count${short ? " short" : ""}"${service.reason ? ` title="${esc(service.reason)}"` : ""}>`
    + `${esc(service.running)}/${esc(service.desired)} running</span>`;
}

function serviceHeaderHTML(service) {
  return `<button type="button" class="service-button" data-service="${esc(service.name)}">${esc(service.name)}</button>`
    + `<span class="template">${esc(service.template)} · v${esc(service.version)} · ${esc(service.signature)}</span>`
    + countHTML(service);
}

function machineHeaderHTML(machine) {
  const host = machine.up ? (machine.hostname || "up") : "agent down";
  return `${esc(machine.id)}<span class="host">${esc(host)}</span>`;
}

function renderFleet() {
  const fleet = state.fleet;
  $("store").textContent = fleet.store;
  showProblems(fleet.problems);
  const machines = fleet.machines;
  const head = `<tr><th scope="col">Service</th>${machines.map((machine) =>
    `<th scope="col" class="${machine.up ? "up" : "down"}" data-machine="${esc(machine.id)}">${machineHeaderHTML(machine)}</th>`).join("")}</tr>`;
  const body = [];
  for (const service of fleet.services) {
    const byMachine = new Map(service.instances.map((instance) => [instance.machine, instance]));
    let row = `<tr data-service="${esc(service.name)}"><th scope="row">${serviceHeaderHTML(service)}</th>`;
    for (const machine of machines) {
      const instance = byMachine.get(machine.id);
      row += instance
        ? `<td class="cell state-${esc(instance.state)}">${cellHTML(service.name, instance)}</td>`
        : `<td class="cell empty"><span aria-hidden="true">·</span><span class="visually-hidden">not deployed</span></td>`;
    }
    body.push(row + "</tr>");
  }
  const table = $("grid");
  const focused = focusedCell();
  table.tHead.innerHTML = head;
  table.tBodies[0].innerHTML = body.join("");
  indexCells();
  restoreFocus(focused);
  $("empty").hidden = fleet.services.length > 0;
  if (!state.interactive) {
    state.interactive = true;
    performance.mark("pop-interactive");
  }
  refreshDetails();
}

function indexCells() {
  state.cells.clear();
  state.rows.clear();
  const machines = state.fleet.machines;
  const rows = $("grid").tBodies[0].rows;
  state.fleet.services.forEach((service, index) => {
    const row = rows[index];
    state.rows.set(service.name, row);
    const byMachine = new Map(service.instances.map((instance) => [instance.machine, instance]));
    machines.forEach((machine, column) => {
      const instance = byMachine.get(machine.id);
      if (instance) {
        state.cells.set(cellKey(service.name, machine.id), { td: row.cells[column + 1], html: cellHTML(service.name, instance) });
      }
    });
  });
}

function focusedCell() {
  const active = document.activeElement;
  if (!active || !active.dataset) return null;
  return { service: active.dataset.service, machine: active.dataset.machine, serviceButton: active.classList.contains("service-button") };
}

function restoreFocus(focused) {
  if (!focused || !focused.service) return;
  const selector = focused.serviceButton
    ? `.service-button[data-service="${CSS.escape(focused.service)}"]`
    : `.cell-button[data-service="${CSS.escape(focused.service)}"][data-machine="${CSS.escape(focused.machine || "")}"]`;
  const element = $("grid").querySelector(selector);
  if (element) element.focus();
}

function applyRows(message) {
  if (!state.fleet) return;
  const focused = focusedCell();
  for (const service of message.services) {
    const index = state.fleet.services.findIndex((known) => known.name === service.name);
    if (index < 0) continue;
    state.fleet.services[index] = service;
    const row = state.rows.get(service.name);
    if (row) row.cells[0].innerHTML = serviceHeaderHTML(service);
    for (const instance of service.instances) {
      const cell = state.cells.get(cellKey(service.name, instance.machine));
      if (!cell) continue;
      const html = cellHTML(service.name, instance);
      if (html === cell.html) continue;
      cell.html = html;
      cell.td.className = `cell state-${instance.state}`;
      cell.td.innerHTML = html;
    }
  }
  for (const machine of message.machines) {
    const index = state.fleet.machines.findIndex((known) => known.id === machine.id);
    if (index < 0) continue;
    state.fleet.machines[index] = machine;
    const th = $("grid").tHead.querySelector(`th[data-machine="${CSS.escape(machine.id)}"]`);
    if (th) {
      th.className = machine.up ? "up" : "down";
      th.innerHTML = machineHeaderHTML(machine);
    }
  }
  state.fleet.problems = message.problems;
  showProblems(message.problems);
  restoreFocus(focused);
  refreshDetails();
}

function tickUptimes() {
  for (const element of document.querySelectorAll(".uptime[data-started]")) {
    const started = Number(element.dataset.started);
    if (!started) continue;
    const text = uptime(started);
    if (element.textContent !== text) element.textContent = text;
  }
}

function showProblems(problems) {
  const element = $("problems");
  element.hidden = !problems || problems.length === 0;
  element.textContent = problems && problems.length ? `Unreadable records: ${problems.join("; ")}` : "";
}

function gridClicked(event) {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.classList.contains("service-button")) openService(button.dataset.service);
  if (button.classList.contains("cell-button")) openInstance(button.dataset.service, button.dataset.machine);
}

// MARK: views

function closeDetails() {
  stopJournal();
  const detail = state.detail;
  state.detail = null;
  $("details").hidden = true;
  if (detail) restoreFocus({ service: detail.service, machine: detail.machine, serviceButton: detail.kind === "service" });
}

function showDetails(title) {
  $("details").hidden = false;
  $("details-title").textContent = title;
  $("details-title").focus();
}

function findService(name) {
  return state.fleet ? state.fleet.services.find((service) => service.name === name) : null;
}

function findInstance(serviceName, machine) {
  const service = findService(serviceName);
  return service ? service.instances.find((instance) => instance.machine === machine) : null;
}

// Live facts in an open view follow the grid.
function refreshDetails() {
  const detail = state.detail;
  if (!detail) return;
  if (detail.kind === "instance") {
    const instance = findInstance(detail.service, detail.machine);
    const facts = $("instance-facts");
    if (facts) facts.innerHTML = instance ? instanceFactsHTML(detail.service, instance) : "<dt>State</dt><dd>not deployed</dd>";
  } else {
    const service = findService(detail.service);
    const facts = $("service-facts");
    if (facts && service) facts.innerHTML = serviceFactsHTML(service);
  }
}

function serviceFactsHTML(service) {
  const counts = {};
  for (const instance of service.instances) counts[instance.state] = (counts[instance.state] || 0) + 1;
  const summary = Object.entries(counts).map(([name, count]) => `${count} ${name}`).join(", ") || "not deployed";
  return `<dt>Template</dt><dd>${esc(service.template)}</dd><dt>Version</dt><dd>${esc(service.version)}</dd>`
    + `<dt>Signature</dt><dd>${esc(service.signature)}</dd><dt>Instances</dt><dd>${esc(summary)}</dd>`
    + (service.desired !== null && service.desired !== undefined
      ? `<dt>Desired</dt><dd>${esc(service.desired)} (${esc(service.running)} running the current configuration)${service.reason ? `: ${esc(service.reason)}` : ""}</dd>`
      : "");
}

function instanceFactsHTML(serviceName, instance) {
  const service = findService(serviceName);
  return `<dt>State</dt><dd>${esc(instance.state)}</dd>`
    + `<dt>PID</dt><dd>${esc(dash(instance.pid))}</dd>`
    + `<dt>Uptime</dt><dd><span class="uptime" data-started="${esc(instance.pid != null ? instance.started ?? "" : "")}">${esc(uptime(instance.pid != null ? instance.started : null))}</span></dd>`
    + `<dt>Restarts</dt><dd>${esc(dash(instance.restarts))}</dd>`
    + `<dt>CPU</dt><dd>${esc(percent(instance.cpuPercent))}</dd>`
    + `<dt>Memory</dt><dd>${esc(bytes(instance.memoryBytes))}</dd>`
    + `<dt>Signature</dt><dd>${esc(dash(instance.signature))}${instance.current ? " (current)" : ` <span class="old-mark">old</span> (the service's is ${esc(service ? service.signature : "—")})`}</dd>`
    + `<dt>Last error</dt><dd>${esc(dash(instance.lastError))}</dd>`;
}

async function openService(name) {
  stopJournal();
  state.detail = { kind: "service", service: name };
  showDetails(`Service ${name}`);
  const body = $("details-body");
  body.innerHTML = `<p class="note">Loading…</p>`;
  let details;
  try {
    details = await api(`/api/services/${encodeURIComponent(name)}`);
  } catch (error) {
    body.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    return;
  }
  if (!state.detail || state.detail.service !== name || state.detail.kind !== "service") return;
  const service = findService(name);
  const machines = state.fleet ? state.fleet.machines.map((machine) => machine.id) : [];
  const placed = new Set(details.machines);
  const free = machines.filter((machine) => !placed.has(machine));
  const options = details.options.map((option) => `<tr>
      <th scope="row">--${esc(option.name)}</th>
      <td>${option.secret ? (option.isSet ? "•••••••• (secret)" : "not set (secret)") : esc(dash(option.value))}</td>
      <td>${esc(option.type)}${option.choices ? `: ${esc(option.choices.join(", "))}` : ""}</td>
      <td>${esc(option.help)}</td></tr>`).join("");
  body.innerHTML = `
    <dl class="facts-list" id="service-facts">${service ? serviceFactsHTML(service) : ""}</dl>
    <div class="actions">
      <button type="button" class="danger" id="restart-service">Restart every instance</button>
    </div>
    <h3>Options</h3>
    <table><caption class="visually-hidden">Options of ${esc(name)}</caption>
      <thead><tr><th scope="col">Option</th><th scope="col">Value</th><th scope="col">Type</th><th scope="col">Help</th></tr></thead>
      <tbody>${options}</tbody></table>
    <h3>Change the configuration</h3>
    <form id="config-form">
      <p class="note">A change gives the service a new signature: every instance restarts${details.maxParallel ? `, ${esc(details.maxParallel)} machine(s) at a time` : ""}. The plan is shown before anything changes.</p>
      ${details.options.map(optionInputHTML).join("")}
      <p><button type="submit" class="primary">Show the plan</button></p>
      <div id="plan" aria-live="polite"></div>
    </form>
    <h3>Placement</h3>
    <fieldset class="machines-choice"><legend>Deploy to</legend>
      ${free.length ? free.map((machine) => `<label><input type="checkbox" name="deploy" value="${esc(machine)}"> ${esc(machine)}</label>`).join("") : `<span class="note">Deployed to every known machine.</span>`}
      ${free.length ? `<button type="button" id="deploy">Deploy</button>` : ""}
    </fieldset>
    <fieldset class="machines-choice"><legend>Undeploy from</legend>
      ${details.machines.length ? details.machines.map((machine) => `<label><input type="checkbox" name="undeploy" value="${esc(machine)}"> ${esc(machine)}</label>`).join("") : `<span class="note">Not deployed anywhere.</span>`}
      ${details.machines.length ? `<button type="button" class="danger" id="undeploy">Undeploy</button>` : ""}
    </fieldset>
    <h3>History</h3>
    ${historyHTML(name, details.history)}
    <h3 id="events-title">Events</h3>
    <ol class="events" id="events" aria-labelledby="events-title"></ol>
    <p class="note" id="events-note"></p>`;
  $("restart-service").addEventListener("click", () => restart(name, null));
  $("config-form").addEventListener("submit", (event) => { event.preventDefault(); showPlan(name, details); });
  if ($("deploy")) $("deploy").addEventListener("click", () => deploy(name, checked("deploy")));
  if ($("undeploy")) $("undeploy").addEventListener("click", () => undeploy(name, checked("undeploy")));
  followEvents(name);
}

// The versions the service's history keeps, newest first: who changed what, with which command.
function historyHTML(name, versions) {
  if (!versions.length) return `<p class="note">No history yet: ${esc(name)} was added by an earlier release; its next change starts it.</p>`;
  const rows = versions.map((entry) => `<tr data-version="${esc(entry.version)}"${entry.current ? ` class="current-version"` : ""}>
      <th scope="row">${esc(entry.version)}${entry.current ? " (current)" : ""}</th>
      <td>${esc(new Date(entry.time).toLocaleString())}</td>
      <td>${esc(entry.user)}</td>
      <td><code>${esc(entry.signature)}</code></td>
      <td><code>${esc(entry.command)}</code>${entry.changes && entry.changes.length ? `<ul class="changes">${entry.changes.map((change) => `<li>${esc(change)}</li>`).join("")}</ul>` : ""}</td></tr>`).join("");
  return `<table id="history"><caption class="visually-hidden">History of ${esc(name)}</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Time</th><th scope="col">User</th><th scope="col">Signature</th><th scope="col">Command and changes</th></tr></thead>
      <tbody>${rows}</tbody></table>`;
}

function journalTime(text) {
  // RFC 3339 with nanoseconds: the time of day to the second, in the page's time zone.
  const date = new Date(text.replace(/\.(\d{3})\d*Z$/, ".$1Z"));
  return isNaN(date) ? text : date.toLocaleTimeString();
}

// The service's lifecycle events from every machine, newest last.
function followEvents(name) {
  const list = $("events");
  followJournal(`/api/services/${encodeURIComponent(name)}/events`, $("events-note"),
    "Following the events of every machine.", (objects) => {
      for (const object of objects) {
        const item = document.createElement("li");
        item.dataset.machine = object.machine;
        if (object.kind) item.dataset.kind = object.kind;
        if (object.reason) item.dataset.reason = object.reason;
        item.className = object.marker ? "marker" : `event-${object.kind}`;
        item.textContent = `${journalTime(object.time)} ${object.machine}: `
          + (object.marker ? `${object.marker}${object.detail ? ` (${object.detail})` : ""}` : object.summary);
        list.append(item);
      }
      while (list.childNodes.length > 500) list.firstChild.remove();
    });
}

function optionInputHTML(option) {
  const id = `option-${option.name}`;
  const label = `<label for="${esc(id)}">--${esc(option.name)}</label> `;
  let input;
  if (option.type === "bool") {
    input = `<select id="${esc(id)}" data-option="${esc(option.name)}" data-current="${esc(option.value ?? "")}">
      <option value="true"${option.value === "true" ? " selected" : ""}>true</option>
      <option value="false"${option.value !== "true" ? " selected" : ""}>false</option></select>`;
  } else if (option.type === "enum" && option.choices) {
    input = `<select id="${esc(id)}" data-option="${esc(option.name)}" data-current="${esc(option.value ?? "")}">${option.choices.map((choice) =>
      `<option${choice === option.value ? " selected" : ""}>${esc(choice)}</option>`).join("")}</select>`;
  } else if (option.secret) {
    input = `<input type="password" id="${esc(id)}" data-option="${esc(option.name)}" data-secret="true" autocomplete="new-password" placeholder="unchanged">`;
  } else {
    const type = option.type === "port" || option.type === "int" ? "number" : "text";
    input = `<input type="${type}" id="${esc(id)}" data-option="${esc(option.name)}" data-current="${esc(option.value ?? "")}" value="${esc(option.value ?? "")}">`;
  }
  return `<p class="option-row">${label}${input}</p>`;
}

function changedOptions() {
  const options = {};
  for (const input of document.querySelectorAll("#config-form [data-option]")) {
    if (input.dataset.secret) {
      if (input.value !== "") options[input.dataset.option] = input.value;
    } else if (input.value !== input.dataset.current) {
      options[input.dataset.option] = input.value;
    }
  }
  return options;
}

function checked(name) {
  return Array.from(document.querySelectorAll(`input[name="${name}"]:checked`)).map((input) => input.value);
}

async function showPlan(name) {
  const target = $("plan");
  const options = changedOptions();
  if (Object.keys(options).length === 0) {
    target.innerHTML = `<p class="note">Nothing is changed yet: edit an option first.</p>`;
    return;
  }
  let plan;
  try {
    plan = await api(`/api/services/${encodeURIComponent(name)}/plan`, { options });
  } catch (error) {
    target.innerHTML = `<p class="error">${esc(error.message)}${error.hint ? ` ${esc(error.hint)}` : ""}</p>`;
    return;
  }
  const rows = plan.changes.map((change) => `<tr><th scope="row">--${esc(change.option)}</th>`
    + `<td>${change.secret ? "(secret)" : esc(dash(change.before))}</td><td>${change.secret ? "changed" : esc(dash(change.after))}</td></tr>`).join("");
  const restarts = plan.restarts.length
    ? `${plan.restarts.length} instance(s) restart${plan.maxParallel ? `, ${plan.maxParallel} at a time` : ", all at once"}: ${plan.restarts.map(esc).join(", ")}.`
    : "No instance is deployed, so none restarts.";
  target.innerHTML = `<div class="plan">
      <table><caption>Plan for ${esc(name)} (version ${esc(plan.version)})</caption>
        <thead><tr><th scope="col">Option</th><th scope="col">Now</th><th scope="col">After</th></tr></thead>
        <tbody>${rows || `<tr><td colspan="3">No option changes.</td></tr>`}</tbody></table>
      <p>Signature ${esc(plan.signatureBefore.slice(0, 8))} → ${esc(plan.signatureAfter.slice(0, 8))}. ${restarts}</p>
      ${plan.signatureBefore !== plan.signatureAfter ? `<button type="button" class="danger" id="apply-plan">Apply this change</button>` : ""}
    </div>`;
  const apply = $("apply-plan");
  if (apply) {
    apply.addEventListener("click", async () => {
      const ok = await confirmAction(`Change the configuration of ${name}?`,
        `${plan.changes.map((change) => `--${change.option}`).join(", ")} change. ${restarts}`, "Apply");
      if (!ok) return;
      try {
        await api(`/api/services/${encodeURIComponent(name)}/config`, { options, version: plan.version });
        toast(`Changed ${name}; its instances restart.`);
        openService(name);
      } catch (error) {
        failed(error);
      }
    });
  }
}

async function restart(name, machines) {
  const where = machines ? machines.join(", ") : "every machine";
  const ok = await confirmAction(`Restart ${name}?`, `The instances of ${name} on ${where} stop and start again.`, "Restart");
  if (!ok) return;
  try {
    const result = await api(`/api/services/${encodeURIComponent(name)}/restart`, { machines });
    toast(`Asked ${result.machines.join(", ") || "no machine"} to restart ${name}.`);
  } catch (error) {
    failed(error);
  }
}

async function deploy(name, machines) {
  if (machines.length === 0) { toast("Choose the machines to deploy to."); return; }
  try {
    await api(`/api/services/${encodeURIComponent(name)}/deploy`, { machines });
    toast(`Deployed ${name} to ${machines.join(", ")}.`);
    if (state.detail && state.detail.kind === "service") openService(name);
  } catch (error) {
    failed(error);
  }
}

async function undeploy(name, machines) {
  if (machines.length === 0) { toast("Choose the machines to undeploy from."); return; }
  const ok = await confirmAction(`Undeploy ${name}?`, `${name} stops on ${machines.join(", ")} and is no longer placed there.`, "Undeploy");
  if (!ok) return;
  try {
    await api(`/api/services/${encodeURIComponent(name)}/undeploy`, { machines });
    toast(`Undeployed ${name} from ${machines.join(", ")}.`);
    if (state.detail && state.detail.kind === "service") openService(name);
    else closeDetails();
  } catch (error) {
    failed(error);
  }
}

function confirmAction(title, text, verb) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-body").textContent = text;
  $("confirm-ok").textContent = verb;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

function openInstance(service, machine) {
  stopJournal();
  state.detail = { kind: "instance", service, machine };
  showDetails(`${service} on ${machine}`);
  const instance = findInstance(service, machine);
  $("details-body").innerHTML = `
    <dl class="facts-list" id="instance-facts">${instance ? instanceFactsHTML(service, instance) : ""}</dl>
    <div class="actions">
      <button type="button" class="danger" id="restart-instance">Restart</button>
      <button type="button" class="danger" id="undeploy-instance">Undeploy</button>
      <button type="button" id="open-service">Service ${esc(service)}</button>
    </div>
    <h3 id="log-title">Log</h3>
    <pre class="log" id="log" tabindex="0" aria-labelledby="log-title"></pre>
    <p class="note" id="log-note"></p>`;
  $("restart-instance").addEventListener("click", () => restart(service, [machine]));
  $("undeploy-instance").addEventListener("click", () => undeploy(service, [machine]));
  $("open-service").addEventListener("click", () => openService(service));
  followLog(service, machine);
}

function stopJournal() {
  if (state.journalAbort) state.journalAbort.abort();
  state.journalAbort = null;
}

// The instance's log: its last lines, then each as it is written, on whichever machine it runs.
function followLog(service, machine) {
  const log = $("log");
  followJournal(`/api/services/${encodeURIComponent(service)}/machines/${encodeURIComponent(machine)}/log`,
    $("log-note"), "Following the log as it is written.", (objects) => {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      for (const object of objects) {
        const span = document.createElement("span");
        if (object.marker) {
          span.className = "marker";
          span.textContent = `— ${object.machine} ${object.marker}${object.detail ? `: ${object.detail}` : ""}\n`;
        } else {
          if (object.stream === "stderr") span.className = "stderr";
          span.textContent = `${object.line}\n`;
        }
        log.append(span);
      }
      while (log.childNodes.length > 2000) log.firstChild.remove();
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
}

// A journal stream (server-sent `journal` events, each an array of `pop logs --json` objects), read with fetch so
// that a refusal's reason can be shown. Closing the view aborts it, and the server stops reading.
async function followJournal(url, note, following, receive) {
  stopJournal();
  const abort = new AbortController();
  state.journalAbort = abort;
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", signal: abort.signal });
  } catch (_) {
    return;
  }
  if (!response.ok || !(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    let json = {};
    try { json = await response.json(); } catch (_) { json = {}; }
    note.textContent = `${json.error || "Not available."} ${json.hint || ""}`;
    return;
  }
  note.textContent = following;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split("\n");
        const name = (lines.find((line) => line.startsWith("event: ")) || "").slice(7);
        const data = lines.find((line) => line.startsWith("data: "));
        if (!data) continue;
        const message = JSON.parse(data.slice(6));
        if (name === "problem") note.textContent = message.error;
        else if (name === "journal") receive(message);
      }
    }
    if (state.journalAbort === abort) note.textContent = "The stream ended.";
  } catch (_) {
    // Aborted: the view closed.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  begin().catch((error) => {
    setConnection("Could not reach pop ui", "lost");
    toast(error.message);
  });
});
