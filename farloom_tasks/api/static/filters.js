// The dashboard's filter bar: country, device and advertiser. The filters live in the
// URL hash (#country=US&device=mobile&advertiser_id=acme), so a view can be shared, and
// are sent as the query API's parameters of the same names (docs/design.md §2.10).
"use strict";

const FILTER_FIELDS = [
  { param: "country", input: "filter-country", name: "country" },
  { param: "device", input: "filter-device", name: "device" },
  { param: "advertiser_id", input: "filter-advertiser", name: "advertiser" },
];
const FILTER_DEVICES = ["desktop", "mobile", "tablet", "tv", "other"];
const MAX_ID_CHARS = 64;
// Not printable as Python's str.isprintable() has it (the click contract's rule),
// except that a space is printable.
const UNPRINTABLE = /(?! )[\p{C}\p{Z}]/u;

const filterBar = {
  values: {}, // API parameter -> value, only the ones set and valid
  // An advertiser's key sees its own ads only (§2.10, "Scoping"): the advertiser
  // filter is hidden and never sent, since the key already fixes it.
  advertiserKey: false,
  onChange: () => {},
};

function normalisedFilter(param, raw) {
  const value = raw.trim();
  if (param === "country") return value.toUpperCase();
  if (param === "device") return value.toLowerCase();
  return value;
}

// Why a value cannot be sent, or null: the click contract's rules (§2.1).
function filterProblem(param, value) {
  if (param === "country" && !/^[A-Z]{2}$/.test(value)) {
    return `country '${value}' is not a two-letter ISO 3166-1 code such as US`;
  }
  if (param === "device" && !FILTER_DEVICES.includes(value)) {
    return `device '${value}' is not one of ${FILTER_DEVICES.join(", ")}`;
  }
  if (param === "advertiser_id" && (value.length > MAX_ID_CHARS || UNPRINTABLE.test(value))) {
    return `an advertiser id is 1 to ${MAX_ID_CHARS} printable characters`;
  }
  return null;
}

// {values, problems} from a lookup of raw strings (the hash's parameters or the inputs).
function readFilters(rawOf) {
  const values = {};
  const problems = [];
  for (const field of FILTER_FIELDS) {
    const raw = rawOf(field);
    if (raw === null || raw.trim() === "") continue;
    const value = normalisedFilter(field.param, raw);
    const problem = filterProblem(field.param, value);
    if (problem) problems.push(problem);
    else values[field.param] = value;
  }
  return { values, problems };
}

function showFilterProblems(problems) {
  const error = document.getElementById("filter-error");
  error.hidden = problems.length === 0;
  error.textContent = problems.length ? `Not applied: ${problems.join("; ")}.` : "";
}

function sentFilters() {
  return FILTER_FIELDS.filter((field) => field.param in filterBar.values
    && !(filterBar.advertiserKey && field.param === "advertiser_id"));
}

function describeFilters() {
  const parts = sentFilters().map((f) => `${f.name} ${filterBar.values[f.param]}`);
  const whose = filterBar.advertiserKey ? "your key's ads" : "all clicks";
  return parts.length ? `Showing ${whose} with ${parts.join(", ")}.` : `Showing ${whose}.`;
}

// The query string the top-ads table and the ad's chart append: "&country=US&...".
function filterQuery() {
  return sentFilters().map((f) =>
    `&${f.param}=${encodeURIComponent(filterBar.values[f.param])}`).join("");
}

function applyFilters(values) {
  filterBar.values = values;
  for (const field of FILTER_FIELDS) {
    document.getElementById(field.input).value = values[field.param] || "";
  }
  const hash = new URLSearchParams(values).toString();
  if (location.hash.slice(1) !== hash) {
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  }
  document.getElementById("filter-summary").textContent = describeFilters();
  document.getElementById("filters").dataset.query = filterQuery();
}

function setAdvertiserKey(isAdvertiser) {
  if (filterBar.advertiserKey === isAdvertiser) return;
  filterBar.advertiserKey = isAdvertiser;
  document.getElementById("filter-advertiser-label").hidden = isAdvertiser;
  applyFilters(filterBar.values);
}

function filtersFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return readFilters((field) => params.get(field.param));
}

function initFilters(onChange) {
  filterBar.onChange = onChange;
  const fromHash = filtersFromHash();
  showFilterProblems(fromHash.problems);
  applyFilters(fromHash.values);

  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const fromInputs = readFilters((field) => document.getElementById(field.input).value);
    showFilterProblems(fromInputs.problems);
    if (fromInputs.problems.length) return;
    applyFilters(fromInputs.values);
    filterBar.onChange();
  });
  document.getElementById("filter-clear").addEventListener("click", () => {
    showFilterProblems([]);
    applyFilters({});
    filterBar.onChange();
  });
  window.addEventListener("hashchange", () => { // a shared link pasted into this tab
    const changed = filtersFromHash();
    showFilterProblems(changed.problems);
    applyFilters(changed.values);
    filterBar.onChange();
  });
}
