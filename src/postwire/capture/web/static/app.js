// postwire catcher UI. Every piece of message data goes into the page as text
// (textContent), never as markup; the HTML part is shown only in the sandboxed iframe.
"use strict";
(function () {
  const PAGE = 50;
  const $ = (sel) => document.querySelector(sel);
  const state = { start: 0, query: "", total: 0, matched: 0, rows: [], current: null, tab: "html", remote: false, info: {} };
  const timing = (window.__catcher = { listReadyAt: null, renders: 0 });

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: { "Content-Type": "application/json" } }, options || {}));
    if (!response.ok) throw new Error((await response.text()) || response.statusText);
    const type = response.headers.get("Content-Type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  function who(address) {
    if (!address) return "";
    return address.Name ? `${address.Name} <${address.Address}>` : address.Address;
  }

  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // -- the list -------------------------------------------------------------------------------

  function row(m) {
    const tr = el("tr");
    tr.dataset.id = m.ID;
    if (!m.Read) tr.classList.add("unread");
    if (state.current && state.current.ID === m.ID) tr.classList.add("selected");
    tr.append(el("td", who(m.From)));
    const subject = el("td");
    subject.append(el("span", m.Subject || "(no subject)", "subject"));
    if (m.Attachments) subject.append(el("span", `[${m.Attachments} file${m.Attachments === 1 ? "" : "s"}]`, "clip"));
    subject.append(el("span", m.Snippet, "snippet"));
    tr.append(subject);
    tr.append(el("td", m.To.map(who).join(", ") || m.Bcc.map(who).join(", ")));
    tr.append(el("td", when(m.Created)));
    tr.addEventListener("click", () => open(m.ID));
    return tr;
  }

  function renderList() {
    const body = $("#list tbody");
    body.replaceChildren(...state.rows.map(row));
    $("#empty").hidden = state.rows.length > 0;
    const end = state.start + state.rows.length;
    $("#pager-info").textContent = state.matched ? `${state.start + 1}\u2013${end} of ${state.matched}` : "0 of 0";
    $("#prev").disabled = state.start === 0;
    $("#next").disabled = end >= state.matched;
    timing.renders += 1;
    if (timing.listReadyAt === null) {
      timing.listReadyAt = performance.now();
      document.body.dataset.ready = "list";
    }
  }

  function renderCounts(total, unread) {
    state.total = total;
    $("#counts").textContent = `${total} message${total === 1 ? "" : "s"}, ${unread} unread`;
  }

  let listToken = 0;
  async function loadList() {
    const token = ++listToken;
    const q = state.query.trim();
    const path = q
      ? `/api/v1/search?query=${encodeURIComponent(q)}&start=${state.start}&limit=${PAGE}`
      : `/api/v1/messages?start=${state.start}&limit=${PAGE}`;
    const data = await api(path);
    if (token !== listToken) return; // a newer request went out meanwhile
    if (data.messages.length === 0 && state.start > 0 && data.messages_count > 0) {
      state.start = Math.max(0, Math.floor((data.messages_count - 1) / PAGE) * PAGE);
      return loadList();
    }
    state.rows = data.messages;
    state.matched = data.messages_count;
    renderCounts(data.total, data.unread);
    renderList();
  }

  let refreshTimer = null;
  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadList, 150);
  }

  // -- one message ----------------------------------------------------------------------------

  function showTab(name) {
    state.tab = name;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const p of document.querySelectorAll(".pane")) p.classList.toggle("active", p.id === `pane-${name}`);
  }

  function dl(target, pairs) {
    target.replaceChildren();
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      target.append(el("dt", k), el("dd", v));
    }
  }

  function mimeTree(node) {
    const li = el("li", `${node.PartID}  ${node.ContentType}${node.FileName ? "  \u201C" + node.FileName + "\u201D" : ""}${node.Parts.length ? "" : "  " + node.Size + " bytes"}`);
    if (node.Parts.length) {
      const ul = el("ul");
      for (const child of node.Parts) ul.append(mimeTree(child));
      li.append(ul);
    }
    return li;
  }

  async function showPreview(id) {
    const data = await api(`/api/v1/message/${encodeURIComponent(id)}/preview?remote=${state.remote ? 1 : 0}`);
    if (!state.current || state.current.ID !== id) return;
    $("#preview").srcdoc = data.HTML;
    $("#remote-note").hidden = !data.HasRemote || state.remote;
  }

  async function open(id) {
    state.remote = false;
    const [m, headers, raw, session, tree] = await Promise.all([
      api(`/api/v1/message/${encodeURIComponent(id)}`),
      api(`/api/v1/message/${encodeURIComponent(id)}/headers`),
      api(`/api/v1/message/${encodeURIComponent(id)}/raw`),
      api(`/api/v1/message/${encodeURIComponent(id)}/session`),
      api(`/api/v1/message/${encodeURIComponent(id)}/tree`),
    ]);
    state.current = m;
    $("#detail").hidden = false;
    $("#subject").textContent = m.Subject || "(no subject)";
    dl($("#addresses"), [
      ["From", who(m.From)],
      ["To", m.To.map(who).join(", ")],
      ["Cc", m.Cc.map(who).join(", ")],
      ["Bcc", m.Bcc.map(who).join(", ")],
      ["Reply-To", m.ReplyTo.map(who).join(", ")],
      ["Received", when(m.Date)],
      ["Size", `${m.Size} bytes`],
    ]);
    $("#download-eml").href = `/api/v1/message/${encodeURIComponent(id)}/raw?dl=1`;
    $("#text").textContent = m.Text || "(no text part)";
    const hbody = $("#headers tbody");
    hbody.replaceChildren();
    for (const [name, values] of Object.entries(headers)) {
      for (const value of values) {
        const tr = el("tr");
        tr.append(el("td", name), el("td", value));
        hbody.append(tr);
      }
    }
    $("#raw").textContent = raw;
    $("#mime").replaceChildren(mimeTree(tree));
    const files = m.Attachments.concat(m.Inline);
    const list = $("#attachments");
    list.replaceChildren();
    for (const a of files) {
      const li = el("li");
      const link = el("a", a.FileName || `part ${a.PartID}`, "download");
      link.href = `/api/v1/message/${encodeURIComponent(id)}/part/${encodeURIComponent(a.PartID)}`;
      link.setAttribute("download", a.FileName || "");
      li.append(link, el("span", `  ${a.ContentType}, ${a.Size} bytes`));
      list.append(li);
    }
    $("#no-attachments").hidden = files.length > 0;
    dl($("#session"), [
      ["Envelope from", session.MailFrom || "<>"],
      ["Envelope to", session.RcptTo.join(", ")],
      ["Client", session.Peer],
      ["EHLO", session.Helo],
      ["TLS", session.TLS ? `${session.TLS.Version}, ${session.TLS.Cipher}` : "none"],
      ["AUTH user", session.Username || "none"],
      ["Mailbox", session.Mailbox],
    ]);
    $("#transcript").textContent = session.Transcript.join("\n");
    $("#no-html").hidden = Boolean(m.HTML);
    $("#preview").hidden = !m.HTML;
    $("#remote-note").hidden = true;
    if (m.HTML) await showPreview(id);
    else $("#preview").srcdoc = "";
    $("#release-result").textContent = "";
    for (const tr of document.querySelectorAll("#list tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.id === id);
      if (tr.dataset.id === id) tr.classList.remove("unread");
    }
    if (!m.HTML && state.tab === "html") showTab("text");
    else showTab(state.tab);
    document.body.dataset.open = id;
  }

  function closeDetail() {
    state.current = null;
    $("#detail").hidden = true;
    $("#preview").srcdoc = "";
    delete document.body.dataset.open;
  }

  // -- live updates ---------------------------------------------------------------------------

  function live() {
    const source = new EventSource("/api/v1/events");
    source.onopen = () => $("#live").classList.add("on");
    source.onerror = () => $("#live").classList.remove("on");
    source.addEventListener("new", (e) => {
      const m = JSON.parse(e.data);
      if (state.start === 0 && !state.query.trim()) {
        if (state.rows.some((r) => r.ID === m.ID)) return;
        state.rows.unshift(m);
        state.rows.length = Math.min(state.rows.length, PAGE);
        state.matched += 1;
        renderList();
      } else {
        refreshSoon();
      }
    });
    source.addEventListener("delete", (e) => {
      const ids = JSON.parse(e.data).IDs;
      if (state.current && ids.includes(state.current.ID)) closeDetail();
      refreshSoon();
    });
    source.addEventListener("read", refreshSoon);
    for (const name of ["truncate", "reload"]) {
      source.addEventListener(name, () => {
        if (name === "truncate") closeDetail();
        refreshSoon();
      });
    }
    source.addEventListener("stats", (e) => {
      const s = JSON.parse(e.data);
      renderCounts(s.Total, s.Unread);
    });
  }

  // -- wiring ---------------------------------------------------------------------------------

  let searchTimer = null;
  $("#search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = $("#search").value;
      state.start = 0;
      loadList();
    }, 200);
  });
  $("#prev").addEventListener("click", () => { state.start = Math.max(0, state.start - PAGE); loadList(); });
  $("#next").addEventListener("click", () => { state.start += PAGE; loadList(); });
  $("#delete-all").addEventListener("click", async () => {
    if (!window.confirm("Delete every message?")) return;
    await api("/api/v1/messages", { method: "DELETE" });
    closeDetail();
    state.start = 0;
    loadList();
  });
  $("#delete-button").addEventListener("click", async () => {
    if (!state.current) return;
    await api("/api/v1/messages", { method: "DELETE", body: JSON.stringify({ IDs: [state.current.ID] }) });
    closeDetail();
    loadList();
  });
  $("#remote-button").addEventListener("click", () => {
    if (!state.current) return;
    state.remote = true;
    showPreview(state.current.ID);
  });
  $("#release-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!state.current) return;
    const to = $("#release-to").value.split(/[\s,;]+/).filter(Boolean);
    const out = $("#release-result");
    out.textContent = "sending\u2026";
    try {
      const r = await api(`/api/v1/message/${encodeURIComponent(state.current.ID)}/release`, { method: "POST", body: JSON.stringify({ To: to }) });
      out.textContent = `released to ${r.Accepted.join(", ")} via ${r.Server}` + (Object.keys(r.Refused).length ? `; refused: ${Object.keys(r.Refused).join(", ")}` : "");
    } catch (err) {
      out.textContent = String(err.message || err);
    }
  });
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

  showTab("html");
  api("/api/v1/info").then((info) => {
    state.info = info;
    $("#release-form").hidden = !info.Release;
    if (info.Release) $("#release-button").title = `release through ${info.Release}`;
  });
  loadList();
  live();
})();
