// The tudui page: choose, drop or paste an image; it is sent to POST /predict and the top-k come back as bars.
// No external scripts, styles or fonts: it works offline. A token (when the server has one) is kept for
// this browser tab only (sessionStorage) and sent as "Authorization: Bearer <token>".
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const drop = $("drop"), fileInput = $("file"), preview = $("preview"), hint = $("hint");
  const statusLine = $("status"), results = $("results"), topkSelect = $("topk"), again = $("again");
  const tokenBox = $("token-box"), tokenInput = $("token"), note = $("note");
  let current = null; // the last image sent, so changing top-k can resend it

  function headers() {
    const token = sessionStorage.getItem("tudui-token");
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    } catch (e) { /* not JSON */ }
    return response.status + " " + response.statusText;
  }

  async function loadModel() {
    const response = await fetch("classes", { headers: headers() });
    if (response.status === 401) {
      tokenBox.hidden = false;
      $("model").textContent = "enter the server's token to start";
      return;
    }
    if (!response.ok) { $("model").textContent = await errorText(response); return; }
    tokenBox.hidden = true;
    const info = await response.json();
    $("model").textContent = "model " + info.model + " · " + info.classes.length + " classes";
  }

  function showResults(topk) {
    results.textContent = "";
    for (const entry of topk) {
      const li = document.createElement("li");
      const line = document.createElement("div");
      line.className = "line";
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = entry.label;
      const prob = document.createElement("span");
      prob.className = "prob";
      prob.textContent = (100 * entry.prob).toFixed(1) + "%";
      line.append(label, prob);
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = Math.max(0.5, 100 * entry.prob).toFixed(1) + "%";
      bar.append(fill);
      li.append(line, bar);
      results.append(li);
    }
  }

  async function classify(file) {
    current = file;
    results.textContent = "";
    note.hidden = true;
    setStatus("classifying " + (file.name || "the image") + "…");
    const form = new FormData();
    form.append("file", file, file.name || "pasted.png");
    let response;
    try {
      response = await fetch("predict?topk=" + encodeURIComponent(topkSelect.value),
                             { method: "POST", body: form, headers: headers() });
    } catch (e) {
      setStatus("the server cannot be reached: " + e.message, true);
      return;
    }
    if (response.status === 401) { tokenBox.hidden = false; setStatus("this server needs a token", true); return; }
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    const answer = await response.json();
    document.body.dataset.top = answer.topk[0].label; // for scripts and tests
    setStatus(answer.path + ": " + answer.topk[0].label);
    note.textContent = answer.note || "";
    note.hidden = !answer.note;
    showResults(answer.topk);
  }

  function show(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) { setStatus(file.name + " is not an image", true); return; }
    const url = URL.createObjectURL(file);
    preview.onload = () => {
      preview.classList.toggle("small", preview.naturalWidth < 128);
      URL.revokeObjectURL(url);
    };
    preview.onerror = () => URL.revokeObjectURL(url); // e.g. TIFF: the browser cannot show it, the server can read it
    preview.src = url;
    preview.hidden = false;
    hint.hidden = true;
    again.hidden = false;
    classify(file);
  }

  fileInput.addEventListener("change", () => show(fileInput.files[0]));
  again.addEventListener("click", () => fileInput.click());
  topkSelect.addEventListener("change", () => { if (current) classify(current); });
  drop.addEventListener("click", (e) => { if (e.target === drop || e.target === preview) fileInput.click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => show(e.dataTransfer.files[0]));
  document.addEventListener("paste", (e) => {
    for (const item of e.clipboardData.items) {
      if (item.kind === "file" && item.type.startsWith("image/")) { show(item.getAsFile()); return; }
    }
  });
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("tudui-token", tokenInput.value.trim());
    tokenInput.value = "";
    loadModel().then(() => { if (current && tokenBox.hidden) classify(current); });
  });
  loadModel().catch((e) => { $("model").textContent = "the server cannot be reached: " + e.message; });
})();
