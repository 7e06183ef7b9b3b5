// Farloom dashboard: plain JS, no dependencies, polls the query API.
"use strict";

const REFRESH_MS = 5000; // the pipeline closes a minute every 60 s; 5 s keeps the lag live
const TREND_MINUTES = 30;
const numberFormat = new Intl.NumberFormat("en-US");

// The API key: asked for when the API answers 401 (it is not in the open mode), kept
// for this tab only, sent as a bearer header (never in a URL, which logs keep).
const KEY_STORAGE = "farloom.apiKey";
let waitingForKey = false;

function askForKey(detail) {
  const hadKey = sessionStorage.getItem(KEY_STORAGE) !== null;
  sessionStorage.removeItem(KEY_STORAGE);
  waitingForKey = true;
  text("key-message", hadKey ? `The key was refused: ${detail}` : detail);
  document.getElementById("key-form").hidden = false;
  document.getElementById("forget-key").hidden = true;
}

async function getJSON(path) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(path, { headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) askForKey(body.detail || "This API needs a key.");
  if (!response.ok) {
    const error = new Error(body.detail || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.reason = body.reason;
    throw error;
  }
  return body;
}

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function shortMinute(iso) {
  return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "none yet";
}

// A bar chart of [{label, value}] on a <canvas>, scaled to the largest value.
function drawBars(canvas, points) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 60, right: 10, top: 10, bottom: 24 };
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#6b7280";
  if (points.length === 0) {
    ctx.fillText("no closed minutes in this range yet", pad.left, height / 2);
    return;
  }
  const max = Math.max(1, ...points.map((p) => p.value));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / points.length;
  ctx.strokeStyle = "#dde1e7";
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - fraction);
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(width - pad.right, y);
    ctx.stroke();
    ctx.fillText(numberFormat.format(Math.round(max * fraction)), 4, y + 4);
  }
  ctx.fillStyle = "#3b6fd8";
  points.forEach((p, i) => {
    const h = (p.value / max) * plotH;
    ctx.fillRect(pad.left + i * step + 1, pad.top + plotH - h, Math.max(1, step - 2), h);
  });
  ctx.fillStyle = "#6b7280";
  ctx.fillText(points[0].label, pad.left, height - 6);
  const last = points[points.length - 1].label;
  ctx.fillText(last, width - pad.right - ctx.measureText(last).width, height - 6);
}

// An inline SVG sparkline of a list of counts.
function sparkline(values) {
  const w = 120, h = 24;
  const max = Math.max(1, ...values);
  const stepX = values.length > 1 ? w / (values.length - 1) : w;
  const coords = values.map((v, i) => `${(i * stepX).toFixed(1)},${(h - 1 - (v / max) * (h - 2)).toFixed(1)}`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", coords.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#3b6fd8");
  line.setAttribute("stroke-width", "1.5");
  svg.appendChild(line);
  return svg;
}

function minuteLabel(iso) {
  return iso.slice(11, 16);
}

// Rejected clicks per reason, from the ledger (exact, unlike the dead-letter queue's depth).
function renderRejected(rejected) {
  const body = document.querySelector("#rejected tbody");
  if (rejected === null) {
    text("rejected-total", "unknown");
    body.replaceChildren();
    return;
  }
  text("rejected-window", rejected.window_minutes);
  text("rejected-total", numberFormat.format(rejected.total));
  const lastSeen = {};
  for (const minute of rejected.per_minute) {
    for (const code of Object.keys(minute.per_reason)) lastSeen[code] = minute.minute;
  }
  body.replaceChildren(...Object.entries(rejected.per_reason).map(([code, count]) => {
    const row = document.createElement("tr");
    row.dataset.reason = code;
    row.innerHTML = "<td></td><td class='num'></td><td class='num'></td>";
    row.cells[0].textContent = code;
    row.cells[1].textContent = numberFormat.format(count);
    row.cells[2].textContent = shortMinute(lastSeen[code]);
    return row;
  }));
}

async function refreshHealth() {
  let s;
  try {
    s = await getJSON("/v1/status");
  } catch (error) {
    if (error.status !== 403) throw error;
    setAdvertiserKey(true);
    // An advertiser's key: pipeline health is for admin keys (docs/design.md §2.10).
    const badge = document.getElementById("health-badge");
    badge.textContent = "admin key needed";
    badge.className = "badge";
    document.getElementById("health").dataset.adminOnly = "true";
    return;
  }
  delete document.getElementById("health").dataset.adminOnly;
  setAdvertiserKey(false);
  text("last-closed", shortMinute(s.closed_minute));
  text("lag", s.lag_seconds === null ? "–" : `${s.lag_seconds} s`);
  text("dead-letters", s.dead_letters === null ? "unknown" : numberFormat.format(s.dead_letters));
  text("late-minutes", s.late_minutes_pending === null ? "unknown" : s.late_minutes_pending);
  const badge = document.getElementById("health-badge");
  badge.textContent = s.healthy ? "healthy" : "unhealthy";
  badge.className = "badge " + (s.healthy ? "ok" : "bad");
  const queues = document.querySelector("#queues tbody");
  queues.replaceChildren(...Object.entries(s.queues).map(([name, depth]) => {
    const row = document.createElement("tr");
    row.dataset.queue = name;
    row.innerHTML = "<td></td><td class='num'></td>";
    row.cells[0].textContent = name;
    row.cells[1].textContent = numberFormat.format(depth);
    return row;
  }));
  renderRejected(s.rejected_clicks);
  const problems = document.getElementById("problems");
  problems.replaceChildren(...s.problems.map((p) => {
    const li = document.createElement("li");
    li.textContent = p;
    return li;
  }));
}

async function refreshMinutes() {
  let body;
  try {
    body = await getJSON("/v1/minutes");
  } catch (error) {
    if (error.status === 404) { // nothing closed yet
      drawBars(document.getElementById("minute-chart"), []);
      return;
    }
    throw error;
  }
  const minutes = body.minutes;
  drawBars(document.getElementById("minute-chart"),
    minutes.map((m) => ({ label: minuteLabel(m.minute), value: m.clicks })));
  const last = minutes[minutes.length - 1];
  if (last) {
    text("last-minute", shortMinute(last.minute));
    text("last-minute-total", numberFormat.format(last.clicks));
    text("last-minute-ads", numberFormat.format(last.distinct_ads));
    document.getElementById("last-minute-total").dataset.clicks = last.clicks;
  }
}

// The ad detail's ranges: the API's granularity and its default span (design.md §2.10).
const AD_RANGES = {
  hour: { granularity: "minute", caption: "in the last hour" },
  day: { granularity: "hour", caption: "in the last 24 hours (the current hour so far)" },
  week: { granularity: "day", caption: "in the last 7 days (today so far)" },
};

function pointLabel(iso, granularity) {
  if (granularity === "day") return iso.slice(0, 10);
  if (granularity === "hour") return iso.slice(5, 13).replace("T", " ") + "h";
  return minuteLabel(iso);
}

// A 400 (a filter the API has no slice for, say) is the reader's to fix: said in words
// above the table, which is emptied so that no unfiltered numbers pass for filtered ones.
function showTopError(error) {
  const message = document.getElementById("top-error");
  const table = document.getElementById("top-table");
  message.hidden = error === null;
  if (error === null) {
    delete table.dataset.error;
    return;
  }
  message.textContent = error.status === 404
    ? `Nothing to show for these filters yet: ${error.message}`
    : `The API refused this view: ${error.message}` + (error.reason ? ` (${error.reason})` : "");
  table.dataset.error = error.reason || String(error.status);
  table.querySelector("tbody").replaceChildren();
}

async function refreshTop() {
  const minutes = document.getElementById("top-range").value;
  const filters = filterQuery();
  let body;
  try {
    body = await getJSON(
      `/v1/ads/top?n=100&minutes=${minutes}&trend=${TREND_MINUTES}${filters}`);
  } catch (error) {
    if (error.status === 404 && !filters) return; // nothing closed yet
    // A filtered 404 (no minute written for the slice) must not leave the
    // unfiltered rows standing as if they were the filtered answer.
    if (error.status === 400 || error.status === 404) {
      showTopError(error);
      document.getElementById("top-table").dataset.filters = filters; // what it answered
      return;
    }
    throw error;
  }
  showTopError(null);
  const rows = body.ads.map((ad) => {
    const row = document.createElement("tr");
    row.dataset.adId = ad.ad_id;
    row.innerHTML = "<td class='num'></td><td><a href='#'></a></td><td class='num'></td><td></td>";
    row.cells[0].textContent = ad.rank;
    row.cells[1].firstChild.textContent = ad.ad_id;
    row.cells[1].firstChild.addEventListener("click", (event) => {
      event.preventDefault();
      showAd(ad.ad_id);
    });
    row.cells[2].textContent = numberFormat.format(ad.clicks);
    row.cells[2].dataset.clicks = ad.clicks;
    row.cells[3].appendChild(sparkline(ad.trend));
    return row;
  });
  const table = document.getElementById("top-table");
  table.querySelector("tbody").replaceChildren(...rows);
  table.dataset.minutes = body.minutes;
  table.dataset.filters = filters;
}

async function showAd(adId) {
  document.getElementById("search-ad").value = adId;
  const error = document.getElementById("search-error");
  const range = AD_RANGES[document.getElementById("ad-range").value];
  try {
    const body = await getJSON(
      `/v1/ads/${encodeURIComponent(adId)}/clicks?granularity=${range.granularity}`
      + filterQuery());
    error.hidden = true;
    document.getElementById("ad-detail").hidden = false;
    text("ad-detail-id", body.ad_id);
    text("ad-detail-total", numberFormat.format(body.total));
    text("ad-detail-range", range.caption);
    const total = document.getElementById("ad-detail-total");
    total.dataset.clicks = body.total;
    total.dataset.granularity = body.granularity;
    const points = body[`${body.granularity}s`];
    drawBars(document.getElementById("ad-chart"), points.map((p) => ({
      label: pointLabel(p[body.granularity], body.granularity), value: p.clicks })));
  } catch (e) {
    document.getElementById("ad-detail").hidden = true;
    error.hidden = false;
    error.textContent = e.status === 400 && e.reason
      ? `The API refused this view: ${e.message} (${e.reason})` : e.message;
  }
}

async function refresh() {
  if (waitingForKey) return;
  // Health first: its 403 tells an advertiser's key, whose filters differ (filters.js).
  // A 401 there stops the round: the rest, sent without the key it cleared, would
  // replace the key form's reason (say, "revoked") with a plain "needs a key".
  const results = await Promise.allSettled([refreshHealth()]);
  if (!waitingForKey) results.push(...await Promise.allSettled([refreshMinutes(), refreshTop()]));
  const failed = results.filter((r) => r.status === "rejected");
  text("updated", waitingForKey ? "waiting for an API key" : failed.length
    ? `update failed: ${failed[0].reason.message}`
    : `updated ${new Date().toISOString().slice(11, 19)} UTC`);
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const adId = document.getElementById("search-ad").value.trim();
  if (adId) showAd(adId);
});

initFilters(() => {
  refreshTop();
  const adId = document.getElementById("search-ad").value.trim();
  if (adId) showAd(adId);
});

document.getElementById("top-range").addEventListener("change", () => { refreshTop(); });
document.getElementById("ad-range").addEventListener("change", () => {
  const adId = document.getElementById("search-ad").value.trim();
  if (adId) showAd(adId);
});

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  sessionStorage.setItem(KEY_STORAGE, input.value.trim());
  input.value = "";
  waitingForKey = false;
  document.getElementById("key-form").hidden = true;
  document.getElementById("forget-key").hidden = false;
  refresh();
});

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  askForKey("The key was forgotten; enter one to go on.");
});

if (sessionStorage.getItem(KEY_STORAGE) !== null) {
  document.getElementById("forget-key").hidden = false;
}
refresh();
setInterval(refresh, REFRESH_MS);
