/* global document, window, fetch, location, setInterval, clearInterval, URLSearchParams */
// The cartbridge operator console: plain DOM, no framework, no build step. Every value from the server is
// put in the page with textContent (never parsed as HTML). It reads the same JSON API scripts use
// (README "Admin API"); state-changing requests carry the session's CSRF token in X-CSRF-Token.

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const state = { csrf: null, view: null, timer: null, before: null, filter: {}, detailId: null, shops: [] };

// ---- small helpers -----------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat())
    if (c !== null && c !== undefined) node.append(c instanceof window.Node ? c : String(c));
  return node;
}

function ago(isoTime) {
  if (!isoTime) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(isoTime)) / 1000));
  return `${age(s)} ago`;
}
function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d`;
}
/** A HubSpot request's status as the sender reported it, in words where a number says little. */
function statusText(status) {
  if (status === "207") return "207, some inputs refused";
  if (status === "error") return "no answer (timeout or connection lost)";
  return status;
}

function when(isoTime) {
  return isoTime ? el("time", { datetime: isoTime, title: isoTime }, ago(isoTime)) : "never";
}

async function api(path, opts = {}) {
  const headers = { accept: "application/json" };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (opts.method && opts.method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const res = await fetch(path, {
    method: opts.method ?? "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: "same-origin",
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && path !== "/admin/session") {
    signedOut();
    throw new Error("signed out");
  }
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

/** Copies each column's header into its cells' data-label, so narrow screens can show rows as cards. */
function labelCells(table) {
  const names = [...table.tHead.rows[0].cells].map((c) => c.textContent.trim());
  for (const row of table.tBodies[0].rows) {
    [...row.cells].forEach((cell, i) => {
      if (names[i]) cell.dataset.label = names[i];
    });
  }
}

function setLive(text) {
  $("live").textContent = text;
}

// ---- sign-in and navigation ------------------------------------------------------------------------

function signedOut() {
  state.csrf = null;
  stopRefresh();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  setLive("");
  show("sign-in");
  $("token").focus();
}

function signedIn(session) {
  state.csrf = session.csrfToken;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  route();
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const session = await api("/admin/session", { method: "POST", body: { token: $("token").value } });
    $("token").value = "";
    signedIn(session);
  } catch (error) {
    $("sign-in-error").textContent = `Not signed in: ${error.message}.`;
    $("token").select();
  }
});

$("sign-out").addEventListener("click", async () => {
  await api("/admin/session", { method: "DELETE" }).catch(() => {});
  signedOut();
});

const VIEWS = ["sign-in", "overview", "dead-letters", "cart"];
function show(view, focus = false) {
  state.view = view;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (focus) $(`view-${view}`).querySelector("h2").focus();
}

function route(focus = false) {
  if (!state.csrf) return;
  const view = (location.hash || "#overview").slice(1);
  show(VIEWS.includes(view) && view !== "sign-in" ? view : "overview", focus);
  stopRefresh();
  refresh();
  state.timer = setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, REFRESH_MS);
}
function stopRefresh() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
}
window.addEventListener("hashchange", () => route(true));

async function refresh() {
  try {
    if (state.view === "overview") await loadOverview();
    else if (state.view === "dead-letters") await loadDeadLetters(false);
    setLive(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error.message !== "signed out") setLive(`Update failed: ${error.message}`);
  }
}

// ---- overview --------------------------------------------------------------------------------------

function tile(label, value, detail, tone) {
  return el(
    "div",
    { class: `tile ${tone ?? ""}` },
    el("span", { class: "label" }, label),
    el("strong", {}, value),
    detail ? el("span", { class: "detail" }, detail) : null,
  );
}

async function loadOverview() {
  const o = await api("/admin/overview");
  state.shops = o.shops.map((s) => s.shopDomain);
  const sender = o.sender;
  $("tiles").replaceChildren(
    sender.state === "paused"
      ? tile("Sender", "Paused", sender.reason, "bad")
      : sender.problems.length > 0
        ? tile("Sender", "Running, in part", sender.problems.join("; "), "warn")
        : tile("Sender", "Running", null, "good"),
    tile(
      "Rate budget in use",
      `${sender.budget.inUse} / ${sender.budget.maxPer10s}`,
      "requests in the last 10 s",
    ),
    tile(
      "Pending carts",
      String(o.totals.pendingCarts),
      o.totals.pendingCarts > 0 ? `oldest ${age(o.totals.oldestPendingAgeSeconds)}` : null,
    ),
    tile("Dead letters", String(o.totals.deadLetters), null, o.totals.deadLetters > 0 ? "warn" : ""),
    tile(
      "Refused (401) last hour",
      String(o.refusals.lastHour),
      `last day ${o.refusals.lastDay}; a wrong secret or a stranger`,
      o.refusals.lastHour > 0 ? "warn" : "",
    ),
  );
  const rows = o.shops.map((s) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, s.shopDomain),
      el(
        "td",
        {},
        el(
          "ul",
          { class: "plain topics" },
          Object.entries(s.lastDeliveryByTopic)
            .sort()
            .map(([topic, t]) => el("li", {}, `${topic}: `, when(t))),
        ),
      ),
      el("td", { class: "num" }, String(s.deliveriesLastHour)),
      el("td", { class: "num" }, String(s.deliveriesLastDay)),
      el("td", { class: "num" }, String(s.pendingCarts)),
      el("td", {}, age(s.oldestPendingAgeSeconds)),
      el(
        "td",
        { class: "num" },
        s.deadLetters > 0
          ? el(
              "a",
              {
                href: "#dead-letters",
                dataset: { shop: s.shopDomain },
                onclick: () => {
                  setFilter({ shop: s.shopDomain });
                },
              },
              String(s.deadLetters),
            )
          : "0",
      ),
      el("td", {}, describeReconcile(s.reconciliation, o.reconciliation)),
    ),
  );
  $("shops").tBodies[0].replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8 }, "No deliveries yet."))]),
  );
  labelCells($("shops"));
  $("recent-errors").replaceChildren(
    ...(sender.recentErrors.length
      ? sender.recentErrors.map((e) => el("li", {}, when(e.at), ` ${e.operation}: ${statusText(e.status)}`))
      : [el("li", {}, "None since start.")]),
  );
  $("shop-list").replaceChildren(...state.shops.map((s) => el("option", { value: s })));
  $("reason-list").replaceChildren(
    ...o.deadLetterReasons.map((r) => el("option", { value: r.reason }, `${r.count}`)),
  );
}

function describeReconcile(r, configured) {
  if (!r) return configured === "configured" ? "not reconciled" : "—";
  const parts = [r.state === "paused" ? `paused: ${r.pausedReason ?? ""}` : r.state];
  if (r.lastPassAt) parts.push(`last pass ${ago(r.lastPassAt)}`);
  if (r.lastPassSummary) parts.push(`read ${r.lastPassSummary.read}, missed ${r.lastPassSummary.missed}`);
  if (r.lastMissed)
    parts.push(
      `last missed ${r.lastMissed.cartKey} (${r.lastMissed.topic}, found ${ago(r.lastMissed.foundAt)})`,
    );
  return parts.join("; ");
}

// ---- dead letters ----------------------------------------------------------------------------------

function setFilter(filter) {
  state.filter = filter;
  const form = $("dl-filter");
  form.elements.shop.value = filter.shop ?? "";
  form.elements.reason.value = filter.reason ?? "";
}

$("dl-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  state.filter = { shop: form.elements.shop.value.trim(), reason: form.elements.reason.value.trim() };
  loadDeadLetters(true).catch((e) => setLive(e.message));
});

function filterQuery(extra = {}) {
  const params = new URLSearchParams({ order: "newest", limit: "100", ...extra });
  if (state.filter.shop) params.set("shop", state.filter.shop);
  if (state.filter.reason) params.set("reason", state.filter.reason);
  return params;
}

function checkedIds() {
  return [...document.querySelectorAll("#dead-letters tbody input:checked")].map((c) => Number(c.value));
}

async function loadDeadLetters(reset, more = false) {
  const keep = new Set(checkedIds());
  const page = await api(
    `/admin/dead-letters?${filterQuery(more && state.before ? { before: String(state.before) } : {})}`,
  );
  const rows = page.deadLetters.map((d) =>
    el(
      "tr",
      { class: d.id === state.detailId ? "open" : "" },
      el(
        "td",
        {},
        el("input", {
          type: "checkbox",
          value: d.id,
          checked: keep.has(d.id),
          "aria-label": `Select dead letter ${d.id}`,
          onchange: updateSelection,
        }),
      ),
      el(
        "td",
        {},
        el(
          "a",
          {
            href: `#dead-letters`,
            onclick: (e) => {
              e.preventDefault();
              openDetail(d.id);
            },
          },
          `#${d.id}`,
        ),
      ),
      el("td", {}, when(d.createdAt)),
      el("td", {}, d.shopDomain),
      el("td", {}, d.topic),
      el(
        "td",
        { class: "reason" },
        d.category ? el("span", { class: "tag" }, d.category) : null,
        ` ${d.reason}`,
      ),
    ),
  );
  const body = $("dead-letters").tBodies[0];
  if (more) body.append(...rows);
  else
    body.replaceChildren(
      ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6 }, "No dead letters match."))]),
    );
  labelCells($("dead-letters"));
  state.before = page.next;
  $("dl-more").hidden = page.next === null;
  $("dl-count").textContent = `${page.total ?? page.deadLetters.length} matching`;
  if (reset) $("select-all").checked = false;
  updateSelection();
}

$("dl-more").addEventListener("click", () => loadDeadLetters(false, true).catch((e) => setLive(e.message)));
$("select-all").addEventListener("change", (event) => {
  for (const c of document.querySelectorAll("#dead-letters tbody input[type=checkbox]"))
    c.checked = event.target.checked;
  updateSelection();
});
function updateSelection() {
  const n = checkedIds().length;
  $("replay-selected").disabled = n === 0;
  $("replay-selected").textContent = n === 0 ? "Replay selected" : `Replay ${n} selected`;
}

async function replay(body, what) {
  const out = $("replay-outcome");
  out.replaceChildren(`Replaying ${what}…`);
  try {
    const { results } = await api("/admin/dead-letters/replay", { method: "POST", body });
    const counts = {};
    for (const r of results) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
    const summary =
      Object.entries(counts)
        .map(([k, v]) => `${v} ${k.replace("_", " ")}`)
        .join(", ") || "nothing to replay";
    out.replaceChildren(
      el("strong", {}, `Replay of ${what}: ${summary}.`),
      el(
        "ul",
        { class: "plain" },
        results
          .slice(0, 20)
          .map((r) =>
            el(
              "li",
              { class: r.outcome === "replayed" ? "good" : "bad" },
              `#${r.id}: ${r.outcome.replace("_", " ")}${r.reason ? ` — ${r.reason}` : ""}`,
            ),
          ),
      ),
    );
    if (state.detailId !== null && results.some((r) => r.id === state.detailId && r.outcome === "replayed"))
      closeDetail();
    await loadDeadLetters(true);
  } catch (error) {
    if (error.message !== "signed out")
      out.replaceChildren(el("strong", { class: "bad" }, `Replay failed: ${error.message}`));
  }
  out.focus?.();
}

$("replay-selected").addEventListener("click", () => {
  const ids = checkedIds();
  replay({ ids }, `${ids.length} selected`);
});
$("replay-all").addEventListener("click", () => {
  const scope = [
    state.filter.shop && `shop ${state.filter.shop}`,
    state.filter.reason && `reason “${state.filter.reason}”`,
  ]
    .filter(Boolean)
    .join(", ");
  if (!window.confirm(`Replay every dead letter${scope ? ` matching ${scope}` : ""}?`)) return;
  replay(
    { all: true, shop: state.filter.shop || undefined, reason: state.filter.reason || undefined },
    scope ? `all matching ${scope}` : "all",
  );
});

/** What was refused: the stores prefix a buyer's and a line item's rejections (the cart itself was written). */
function sourceOf(d) {
  if (d.source !== "hubspot") return "the delivery could not be mapped";
  if (d.reason.startsWith("line item "))
    return "HubSpot rejected one of the cart's line items (the cart was written)";
  if (d.reason.startsWith("contact: ")) return "HubSpot rejected the cart's buyer (the cart was written)";
  return "HubSpot rejected the cart";
}

async function openDetail(id) {
  const d = await api(`/admin/dead-letters/${id}`);
  state.detailId = id;
  $("dl-detail-title").textContent = `Dead letter #${d.id}`;
  const fields = [
    ["Reason", d.reason],
    ["Category", d.category ?? "—"],
    ["Source", sourceOf(d)],
    ["Shop", d.shopDomain],
    ["Topic", d.topic],
    ["Cart", d.cartKey ?? "—"],
    ["Webhook id", d.webhookId ?? "—"],
    ["Created", d.createdAt],
  ];
  $("dl-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("dl-body").classList.toggle("note", d.body === null);
  $("dl-body").textContent =
    d.body !== null
      ? JSON.stringify(d.body, null, 2)
      : d.source === "hubspot"
        ? "No delivery kept: the cart's newest delivery was sent, expired or erased before HubSpot refused this."
        : "The delivery's body was empty.";
  $("dl-detail").hidden = false;
  $("dl-detail-title").focus();
}
function closeDetail() {
  state.detailId = null;
  $("dl-detail").hidden = true;
}
$("dl-close").addEventListener("click", closeDetail);
$("replay-one").addEventListener("click", () => {
  if (state.detailId !== null) replay({ ids: [state.detailId] }, `#${state.detailId}`);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("dl-detail").hidden) closeDetail();
});

// ---- cart lookup -----------------------------------------------------------------------------------

$("cart-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = event.target.elements.q.value.trim();
  const out = $("cart-result");
  try {
    const { carts } = await api(`/admin/carts?${new URLSearchParams({ q })}`);
    if (carts.length === 0) {
      out.replaceChildren(el("p", {}, `No cart with key or token “${q}”.`));
      return;
    }
    out.replaceChildren(...carts.map(renderCart));
    for (const table of out.querySelectorAll("table")) labelCells(table);
  } catch (error) {
    if (error.message !== "signed out") out.replaceChildren(el("p", { class: "bad" }, error.message));
  }
});

function renderCart(c) {
  // Not pending with an error: HubSpot rejected the last version (its delivery is a dead letter).
  const rejected = !c.pending && c.lastError;
  const sent = c.lastSentAt
    ? when(c.lastSentAt)
    : c.sentVersion > 0 && !rejected
      ? `version ${c.sentVersion}`
      : "never";
  return el(
    "article",
    { class: "card" },
    el("h3", {}, c.key),
    el(
      "dl",
      { class: "fields" },
      el("dt", {}, "Status"),
      el("dd", {}, c.status),
      el("dt", {}, "Pending"),
      el(
        "dd",
        { class: c.pending ? "warn" : rejected ? "bad" : "good" },
        c.pending
          ? `yes, since ${ago(c.pendingSince)}${c.attempts ? ` (${c.attempts} attempts${c.lastError ? `: ${c.lastError}` : ""})` : ""}`
          : rejected
            ? `no: ${c.lastError} (its delivery is in Dead letters)`
            : "no",
      ),
      el("dt", {}, "Last sent"),
      el("dd", {}, sent),
      el("dt", {}, "Version"),
      el("dd", {}, rejected ? `${c.version} (not written)` : `${c.version} (HubSpot has ${c.sentVersion})`),
      el("dt", {}, "HubSpot id"),
      el("dd", {}, c.hubspotId ?? "—"),
    ),
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { class: "stack" },
        el("caption", { class: "sr" }, "Merged properties with the time of the event that set each"),
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col" }, "Property"),
            el("th", { scope: "col" }, "Value"),
            el("th", { scope: "col" }, "Event time"),
          ),
        ),
        el(
          "tbody",
          {},
          c.properties.map((p) =>
            el(
              "tr",
              {},
              el("th", { scope: "row" }, p.name),
              el("td", {}, p.value),
              el("td", {}, el("time", { datetime: p.eventTime }, p.eventTime)),
            ),
          ),
        ),
      ),
    ),
  );
}

// ---- start -----------------------------------------------------------------------------------------

api("/admin/session").then(signedIn, signedOut);
