// facegate's web console: plain JavaScript, no build step. It speaks only to this service's API
// (/v1/...), with the API key the person typed (kept in this tab's sessionStorage, never in a cookie).
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { key: sessionStorage.getItem("facegate-key") || "", role: null, photos: {}, olderBefore: null };

// -- talking to the API ------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const headers = { "X-API-Key": state.key };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function toast(message, isError = true) {
  const box = $("#toast");
  box.textContent = message;
  box.className = isError ? "error" : "ok";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function explain(error) {
  if (error instanceof ApiError) return `${error.body.error || "Error"}: ${error.message}`;
  return `Could not reach the service: ${error.message}`;
}

// -- small DOM helpers (text only: names and labels are never parsed as HTML) ------------------
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

const plural = (n, word, many) => `${n} ${n === 1 ? word : many || word + "s"}`;
const fixed = (value, digits = 2) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const when = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "");

// -- the key and the role ----------------------------------------------------------------------
async function useKey(key) {
  state.key = key.trim();
  sessionStorage.setItem("facegate-key", state.key);
  state.role = null;
  if (!state.key) return showRole();
  try {
    await api("GET", "/v1/people");
    state.role = "admin";
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) state.role = "door";
    else { state.role = null; toast(explain(error)); }
  }
  showRole();
  if (state.role === "admin") { refreshPeople(); refreshEvents(); refreshKeys(); }
}

function showRole() {
  const text = { admin: "admin key: everything", door: "door key: door checks only" }[state.role];
  $("#whoami").textContent = text || (state.key ? "key refused" : "enter a key");
  $("#whoami").className = state.role ? "ok" : "warn";
  for (const button of document.querySelectorAll("[data-admin]")) button.hidden = state.role !== "admin";
  if (state.role !== "admin") showTab("door");
}

function showTab(name) {
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.tab === name);
  if (name === "events" && state.role === "admin") refreshEvents();
  if (name === "people" && state.role === "admin") refreshPeople();
  if (name === "keys" && state.role === "admin") refreshKeys();
}

// -- photos: files or a webcam frame -------------------------------------------------------------
function chosenPhotos(picker) {
  if (state.photos[picker]) return [state.photos[picker]];
  const input = document.querySelector(`[data-picker="${picker}"] input[type=file]`);
  return Array.from(input.files);
}

function clearPhotos(picker) {
  state.photos[picker] = null;
  const box = document.querySelector(`[data-picker="${picker}"]`);
  box.querySelector("input[type=file]").value = "";
  const preview = box.querySelector(".preview");
  preview.hidden = true;
  preview.removeAttribute("src");
}

let cameraFor = null;
async function openCamera(picker) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    toast("This browser gives no webcam here (it needs https or localhost).");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    cameraFor = picker;
    $("#camera-video").srcObject = stream;
    $("#camera").hidden = false;
  } catch (error) {
    toast(`No webcam: ${error.message}`);
  }
}

function closeCamera() {
  const video = $("#camera-video");
  if (video.srcObject) for (const track of video.srcObject.getTracks()) track.stop();
  video.srcObject = null;
  $("#camera").hidden = true;
}

function snap() {
  const video = $("#camera-video");
  const canvas = el("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const picker = cameraFor;
  canvas.toBlob((blob) => {
    state.photos[picker] = new File([blob], "webcam.jpg", { type: "image/jpeg" });
    const preview = document.querySelector(`[data-picker="${picker}"] .preview`);
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
  }, "image/jpeg", 0.92);
  closeCamera();
}

// -- the door --------------------------------------------------------------------------------------
function verdict(kind, title, lines) {
  const box = $("#door-result");
  box.className = `verdict ${kind}`;
  box.replaceChildren(el("strong", {}, title), ...lines.map((line) => el("div", {}, line)));
}

async function doorCheck(event) {
  event.preventDefault();
  const name = $("#door-name").value.trim();
  const photos = chosenPhotos("door");
  if (!name || !photos.length) return toast("A claimed name and a photo are needed.");
  const form = new FormData();
  form.append("name", name);
  form.append("photo", photos[0]);
  verdict("pending", "Checking…", []);
  try {
    const r = await api("POST", "/v1/verify", form);
    const point = r.target_fmr !== null ? `target FMR ${r.target_fmr}` : "a fixed threshold";
    const numbers = `distance ${fixed(r.distance)} ${r.verified ? "≤" : ">"} threshold ${fixed(r.threshold)} (${point})`;
    const lines = [numbers];
    if (r.locked) lines.push(`Too many refusals in a row: door checks for ${name} are now locked until ${when(r.locked_until)} UTC.`);
    if (r.verified) verdict("yes", `It's ${name}, welcome in!`, lines);
    else verdict("no", `It's not ${name}, please go away`, lines);
  } catch (error) {
    if (error instanceof ApiError && error.status === 423) {
      verdict("locked", `Door checks for ${name} are locked`, [`Until ${when(error.body.locked_until)} UTC, or until an admin unlocks them. No match was tried.`]);
    } else if (error instanceof ApiError && error.status < 500) {
      verdict("retry", "No decision", [explain(error)]);
    } else {
      verdict("retry", "The service failed (this is not a no)", [explain(error)]);
    }
  }
  if (state.role === "admin") { refreshEvents(); refreshPeople(); }
}

async function doorIdentify() {
  const photos = chosenPhotos("door");
  if (!photos.length) return toast("Choose a photo first.");
  const form = new FormData();
  form.append("photo", photos[0]);
  verdict("pending", "Looking…", []);
  try {
    const r = await api("POST", "/v1/identify", form);
    const point = r.target_fpir !== null ? `target FPIR ${r.target_fpir}` : "a fixed threshold";
    const lines = [`best distance ${fixed(r.distance)}, threshold ${fixed(r.threshold)} (${point}, ${r.enrolled_people} people)`];
    if (r.identity) verdict("yes", `It's ${r.identity}`, lines);
    else verdict("no", "Not in the database", lines);
  } catch (error) {
    verdict("retry", "No decision", [explain(error)]);
  }
  if (state.role === "admin") refreshEvents();
}

// The live check: the service picks an action (blink, turn left, turn right); the webcam's frames of the
// next few seconds go back to it, and it decides whether the same face is the claimed person and did it.
const LIVE_FPS = 8;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function liveCheck() {
  const name = $("#door-name").value.trim();
  if (!name) return toast("A claimed name is needed.");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return toast("This browser gives no webcam here (it needs https or localhost).");
  }
  let challenge;
  try {
    challenge = await api("POST", "/v1/liveness/challenges", { name });
  } catch (error) {
    return verdict("retry", "No decision", [explain(error)]);
  }
  const video = $("#camera-video");
  const prompt = $("#camera-prompt");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    return toast(`No webcam: ${error.message}`);
  }
  $("#camera-snap").hidden = true;
  $("#camera").hidden = false;
  prompt.hidden = false;
  prompt.textContent = "Look at the camera…";
  await sleep(1000);
  prompt.textContent = `${challenge.prompt} (${challenge.seconds} s)`;
  const canvas = el("canvas");
  const frames = [];
  const times = [];
  const start = performance.now();
  while (performance.now() - start < challenge.seconds * 1000 && !$("#camera").hidden) {
    const tick = performance.now();
    if (video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);  // the camera's own image, not the mirrored preview
      frames.push(new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9)));
      times.push(((tick - start) / 1000).toFixed(3));
    }
    await sleep(Math.max(0, 1000 / LIVE_FPS - (performance.now() - tick)));
  }
  const cancelled = $("#camera").hidden;
  prompt.hidden = true;
  $("#camera-snap").hidden = false;
  closeCamera();
  if (cancelled) return verdict("retry", "Live check cancelled", []);
  const form = new FormData();
  (await Promise.all(frames)).forEach((blob, i) => form.append("frame", new File([blob], `frame${i}.jpg`, { type: "image/jpeg" })));
  form.append("times", times.join(","));
  verdict("pending", "Checking…", []);
  try {
    const r = await api("POST", `/v1/liveness/challenges/${encodeURIComponent(challenge.id)}/frames`, form);
    const lines = [`asked: ${challenge.prompt.toLowerCase()}; ${r.message} (${r.reason})`];
    if (r.distance !== null) lines.push(`distance ${fixed(r.distance)} ${r.verified ? "≤" : ">"} threshold ${fixed(r.threshold)}`);
    if (r.locked) lines.push(`Too many refusals in a row: door checks for ${name} are now locked until ${when(r.locked_until)} UTC.`);
    if (r.accepted) verdict("yes", `It's ${name}, live: welcome in!`, lines);
    else if (r.live) verdict("no", `Live, but it's not ${name}: please go away`, lines);
    else verdict("no", "Not shown to be live: the door stays shut", lines);
  } catch (error) {
    if (error instanceof ApiError && error.status === 423) {
      verdict("locked", `Door checks for ${name} are locked`, [`Until ${when(error.body.locked_until)} UTC, or until an admin unlocks them.`]);
    } else {
      verdict("retry", "No decision", [explain(error)]);
    }
  }
  if (state.role === "admin") refreshEvents();
}

// -- people ------------------------------------------------------------------------------------------
let addPhotosFor = null;

async function refreshPeople() {
  try {
    const data = await api("GET", "/v1/people");
    const body = $("#people-table tbody");
    body.replaceChildren(...data.people.map(personRow));
    $("#people-names").replaceChildren(...data.people.map((p) => el("option", { value: p.name })));
    const door = data.state.door || {};
    $("#people-state").textContent = `${plural(data.state.people, "person", "people")}, ${plural(data.state.templates, "photo")}. ` +
      (door.target_fmr ? `Door checks at target FMR ${door.target_fmr}; ` : "") +
      (data.state.identification && data.state.identification.target_fpir ? `identification at target FPIR ${data.state.identification.target_fpir}.` : "") +
      (data.state.warnings || []).map((w) => ` Warning: ${w}`).join("");
  } catch (error) {
    toast(explain(error));
  }
}

function personRow(person) {
  const actions = el("td", { class: "actions" },
    el("button", { type: "button", class: "secondary", onclick: () => { addPhotosFor = person.name; $("#add-photos-input").click(); } }, "Add photos"),
    el("button", { type: "button", class: "secondary", onclick: () => renamePerson(person.name) }, "Rename"),
    el("button", { type: "button", class: "danger", onclick: () => removePerson(person.name) }, "Remove"));
  if (person.locked_until) actions.prepend(el("button", { type: "button", onclick: () => unlockPerson(person.name) }, "Unlock"));
  return el("tr", { "data-name": person.name },
    el("td", {}, person.name), el("td", {}, String(person.templates)), el("td", {}, when(person.created_at)),
    el("td", { class: person.locked_until ? "warn" : "" }, person.locked_until ? `locked until ${when(person.locked_until)}` : "open"),
    actions);
}

async function enrol(event) {
  event.preventDefault();
  const name = $("#enrol-name").value.trim();
  const photos = chosenPhotos("enrol");
  if (!name || !photos.length) return toast("A name and at least one photo are needed.");
  const form = new FormData();
  form.append("name", name);
  for (const photo of photos) form.append("photos", photo);
  $("#enrol-result").textContent = "Enrolling…";
  try {
    const r = await api("POST", "/v1/people", form);
    $("#enrol-result").textContent = `Enrolled ${r.name} from ${plural(r.templates_added, "photo")}.`;
    $("#enrol-name").value = "";
    clearPhotos("enrol");
    refreshPeople();
    refreshEvents();
  } catch (error) {
    $("#enrol-result").textContent = `Not enrolled (nothing was changed): ${explain(error)}`;
  }
}

async function addPhotos() {
  const files = Array.from($("#add-photos-input").files);
  if (!files.length || !addPhotosFor) return;
  const form = new FormData();
  for (const file of files) form.append("photos", file);
  try {
    const r = await api("POST", `/v1/people/${encodeURIComponent(addPhotosFor)}/photos`, form);
    toast(`Added ${plural(r.templates_added, "photo")} to ${r.name}.`, false);
  } catch (error) {
    toast(`No photo was added: ${explain(error)}`);
  }
  $("#add-photos-input").value = "";
  refreshPeople();
  refreshEvents();
}

async function renamePerson(name) {
  const renamed = prompt(`Rename ${name} to:`, name);
  if (!renamed || renamed === name) return;
  try {
    await api("PATCH", `/v1/people/${encodeURIComponent(name)}`, { name: renamed });
    toast(`Renamed ${name} to ${renamed}.`, false);
  } catch (error) { toast(explain(error)); }
  refreshPeople();
  refreshEvents();
}

async function removePerson(name) {
  if (!confirm(`Remove ${name} and all their photos?`)) return;
  try {
    const r = await api("DELETE", `/v1/people/${encodeURIComponent(name)}`);
    toast(`Removed ${name} (${plural(r.templates_removed, "photo")}).`, false);
  } catch (error) { toast(explain(error)); }
  refreshPeople();
  refreshEvents();
}

async function unlockPerson(name) {
  try {
    await api("POST", `/v1/people/${encodeURIComponent(name)}/unlock`);
    toast(`Door checks for ${name} are open again.`, false);
  } catch (error) { toast(explain(error)); }
  refreshPeople();
  refreshEvents();
}

// -- the event log -------------------------------------------------------------------------------------
async function refreshEvents(older = false) {
  const params = new URLSearchParams({ limit: "50" });
  for (const [name, id] of [["since", "#ev-since"], ["until", "#ev-until"], ["person", "#ev-person"], ["kind", "#ev-kind"], ["outcome", "#ev-outcome"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  if (older && state.olderBefore) params.set("before", state.olderBefore);
  try {
    const data = await api("GET", `/v1/events?${params}`);
    const rows = data.events.map(eventRow);
    const body = $("#events-table tbody");
    if (older) body.append(...rows); else body.replaceChildren(...rows);
    state.olderBefore = data.next_before;
    $("#events-older").hidden = data.next_before === null;
  } catch (error) {
    toast(explain(error));
  }
}

function eventRow(e) {
  const photo = e.photos_kept > 0
    ? el("button", { type: "button", class: "secondary", onclick: () => showPhoto(e.id) }, "view")
    : (e.photo_sha256 ? e.photo_sha256.slice(0, 12) : "");
  let person = e.name || (e.detail && e.detail.best_candidate ? `(${e.detail.best_candidate}?)` : "");
  if (e.kind.startsWith("key_")) person = `${e.detail.role} key ${e.detail.key_id} "${e.detail.label}"`;
  const extra = e.kind === "rename" ? ` → ${e.detail.new_name}` : (e.kind === "lock" ? ` until ${when(e.detail.until)}` : "");
  return el("tr", { class: `outcome-${e.outcome}` },
    el("td", {}, when(e.time)), el("td", {}, e.kind), el("td", {}, e.outcome), el("td", {}, person + extra),
    el("td", {}, fixed(e.distance)), el("td", {}, fixed(e.threshold)), el("td", {}, e.operating_point || ""),
    el("td", {}, e.key_label || ""), el("td", {}, e.client || e.endpoint || ""), el("td", {}, photo));
}

async function showPhoto(eventId) {
  const response = await fetch(`/v1/events/${eventId}/photos/0`, { headers: { "X-API-Key": state.key } });
  if (!response.ok) return toast("That photo is no longer kept.");
  window.open(URL.createObjectURL(await response.blob()), "_blank", "noopener");
}

// -- keys ------------------------------------------------------------------------------------------------
async function refreshKeys() {
  try {
    const data = await api("GET", "/v1/keys");
    $("#keys-table tbody").replaceChildren(...data.keys.map((k) => el("tr", {},
      el("td", {}, k.id), el("td", {}, k.role), el("td", {}, k.label), el("td", {}, when(k.created_at)),
      el("td", {}, k.active ? "active" : `revoked ${when(k.revoked_at)}`),
      el("td", {}, k.active ? el("button", { type: "button", class: "danger", onclick: () => revokeKey(k) }, "Revoke") : ""))));
  } catch (error) {
    toast(explain(error));
  }
}

async function createKey(event) {
  event.preventDefault();
  try {
    const r = await api("POST", "/v1/keys", { role: $("#new-key-role").value, name: $("#new-key-label").value.trim() || null });
    $("#new-key").replaceChildren(el("p", {}, `New ${r.role} key ${r.id} (${r.label}). It is shown this once: copy it now.`), el("code", {}, r.key));
    $("#new-key-label").value = "";
  } catch (error) { toast(explain(error)); }
  refreshKeys();
}

async function revokeKey(key) {
  if (!confirm(`Revoke the ${key.role} key ${key.id} (${key.label})? Anything using it is refused at once.`)) return;
  try { await api("DELETE", `/v1/keys/${encodeURIComponent(key.id)}`); } catch (error) { toast(explain(error)); }
  refreshKeys();
  refreshEvents();
}

// -- wiring --------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("#api-key").value = state.key;
  $("#key-form").addEventListener("submit", (event) => { event.preventDefault(); useKey($("#api-key").value); });
  $("#forget-key").addEventListener("click", () => { $("#api-key").value = ""; useKey(""); });
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => showTab(button.dataset.tab));
  for (const picker of document.querySelectorAll(".photo-picker")) {
    const name = picker.dataset.picker;
    picker.querySelector(".camera-button").addEventListener("click", () => openCamera(name));
    picker.querySelector("input[type=file]").addEventListener("change", () => {
      state.photos[name] = null;
      picker.querySelector(".preview").hidden = true;
    });
  }
  $("#camera-snap").addEventListener("click", snap);
  $("#camera-close").addEventListener("click", closeCamera);
  $("#door-form").addEventListener("submit", doorCheck);
  $("#door-identify").addEventListener("click", doorIdentify);
  $("#door-live").addEventListener("click", liveCheck);
  $("#enrol-form").addEventListener("submit", enrol);
  $("#add-photos-input").addEventListener("change", addPhotos);
  $("#events-form").addEventListener("submit", (event) => { event.preventDefault(); refreshEvents(); });
  $("#events-older").addEventListener("click", () => refreshEvents(true));
  $("#key-create-form").addEventListener("submit", createKey);
  if (state.key) useKey(state.key); else showRole();
});
