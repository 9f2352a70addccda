// hwgrader serve: the keyboard-first grading page. Answers arrive as JSON segments and are put
// on the page with textContent only (never innerHTML), so no answer can become markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const qid = body.dataset.question;
  const maxPoints = parseFloat(body.dataset.max);
  const csrf = document.querySelector('meta[name="hwgrader-csrf"]').content;
  const questionIds = JSON.parse($("question-ids").textContent);
  const itemButtons = Array.from(document.querySelectorAll("#items .item"));

  let current = null;        // the answer shown (server's JSON)
  let page = 1;
  let pageSize = 50;         // the server's, from the first answer list
  let saving = Promise.resolve();
  let confirmAction = null;
  let statusTimer = null;

  // ------------------------------------------------------------------ helpers

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function fmt(x) {
    return (Math.round(x * 100) / 100).toString();
  }

  function showNames() { return $("show-names").checked; }

  function say(text, kind) {
    const m = $("message");
    m.textContent = text || "";
    m.className = "message" + (kind ? " " + kind : "");
  }

  async function call(method, url, data) {
    const opts = { method, headers: {}, credentials: "same-origin" };
    if (data !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-Hwgrader-Csrf"] = csrf;
      opts.body = JSON.stringify(data);
    }
    const response = await fetch(url, opts);
    let payload = null;
    try { payload = await response.json(); } catch (e) { payload = null; }
    if (!response.ok) {
      const error = new Error((payload && payload.error) || ("HTTP " + response.status));
      error.status = response.status;
      throw error;
    }
    return payload;
  }

  let asWritten = false;     // false: hard line breaks inside paragraphs joined for reading

  function answerUrl(anon, suffix) {
    const query = [];
    if (showNames()) query.push("names=1");
    if (asWritten) query.push("layout=written");
    const url = "/api/q/" + encodeURIComponent(qid) + "/a/" + encodeURIComponent(anon) + (suffix || "");
    return query.length ? url + (url.includes("?") ? "&" : "?") + query.join("&") : url;
  }

  // ------------------------------------------------------------------ rendering

  function renderSegments(box, segments) {
    box.replaceChildren();
    for (const [kind, text, extra] of segments) {
      if (kind === "t") {
        box.appendChild(document.createTextNode(text));
      } else if (kind === "k") {
        const mark = el("mark", "term", text);
        const items = extra.items.length ? " · rubric item " + extra.items.join(", ") : "";
        mark.title = extra.concept + items;
        if (extra.items.length) mark.dataset.items = extra.items.join(" ");
        box.appendChild(mark);
      } else if (kind === "c") {
        const span = el("span", "ctl", "⟨" + text + "⟩");
        span.title = "hidden character made visible: " + extra;
        box.appendChild(span);
      }
    }
  }

  function localScore() {
    let raw = 0;
    for (const b of itemButtons) if (b.getAttribute("aria-pressed") === "true") raw += parseFloat(b.dataset.points);
    raw += parseFloat($("adjustment").value) || 0;
    return Math.min(maxPoints, Math.max(0, raw));
  }

  function renderScore(graded) {
    $("score").textContent = graded ? fmt(localScore()) : "–";
    const state = $("state");
    if (graded) {
      const g = current && current.grade;
      state.textContent = "graded" + (g ? " by " + g.grader + " " + g.at.replace("T", " ").replace("Z", " UTC") : "");
      state.className = "state graded";
    } else {
      state.textContent = "not graded";
      state.className = "state ungraded";
    }
  }

  function renderProgress(p) {
    if (!p) return;
    $("progress-text").textContent = p.text;
    $("progress-bar").max = p.total || 1;
    $("progress-bar").value = p.graded;
    const tab = document.querySelector(".qtab.current small");
    if (tab) tab.textContent = p.graded + "/" + p.total;
  }

  function render(a) {
    current = a;
    const g = a.grade;
    const applied = new Set(g ? g.items : []);
    for (const b of itemButtons) {
      b.setAttribute("aria-pressed", applied.has(parseInt(b.dataset.item, 10)) ? "true" : "false");
    }
    for (const h of document.querySelectorAll("[data-hint-for]")) {
      const found = a.hints[h.dataset.hintFor];
      h.textContent = found ? "hint: " + found.join(", ") : "";
    }
    $("adjustment").value = g ? fmt(g.adjustment) : "0";
    $("comment").value = g ? g.comment : "";
    $("answer-title").textContent = "Answer " + a.pos + " of " + a.count;
    $("answer-name").textContent = a.name ? a.name : "";
    $("answer-name").hidden = !a.name;
    $("answer-meta").textContent = a.missing ? "no answer handed in" : a.chars + " characters" +
      (a.reflowed ? " · line breaks joined for reading (w: as written)" : (asWritten ? " · as written (w: joined)" : ""));
    const box = $("answer");
    if (a.missing) {
      box.replaceChildren(el("em", "missing", "(this submission has no answer to " + qid.toUpperCase() + ")"));
    } else {
      renderSegments(box, a.segments);
    }
    box.scrollTop = 0;
    const banner = $("group-banner");
    if (a.group) {
      banner.hidden = false;
      banner.textContent = "Group " + a.group.id + ": " + a.group.size + " near-identical answers (" +
        a.group.graded + " graded). Press g to give this grade to all of them.";
    } else {
      banner.hidden = true;
    }
    $("changed-banner").hidden = !a.changed_since_graded;
    renderTotals(a);
    renderBank(a.comments);
    renderScore(!!g);
    renderProgress(a.progress);
    history.replaceState(null, "", "#" + encodeURIComponent(a.anon));
    markListed();
  }

  function renderTotals(a) {
    $("student-total").textContent = "student total " + fmt(a.totals.score) + " / " + fmt(a.totals.max) +
      (a.totals.pending ? " · " + fmt(a.totals.pending) + " pending" : "");
  }

  function renderBank(comments) {
    const list = $("bank");
    list.replaceChildren();
    comments.forEach((c, i) => {
      const li = el("li");
      const b = el("button", "bank-item");
      b.type = "button";
      b.appendChild(el("kbd", null, "⇧" + (i + 1)));
      b.appendChild(el("span", "bank-text", c.text));
      b.appendChild(el("span", "muted uses", "×" + c.uses));
      b.addEventListener("click", () => addBankComment(i));
      li.appendChild(b);
      list.appendChild(li);
    });
    if (!comments.length) list.appendChild(el("li", "muted", "Comments you give are kept here for reuse."));
  }

  async function loadList(p) {
    const data = await call("GET", "/api/q/" + encodeURIComponent(qid) + "/answers?page=" + p +
      (showNames() ? "&names=1" : ""));
    page = data.page;
    pageSize = data.page_size;
    $("page-text").textContent = "page " + data.page + " of " + data.pages + " · " + data.total + " answers";
    $("page-prev").disabled = data.page <= 1;
    $("page-next").disabled = data.page >= data.pages;
    const list = $("answer-list");
    list.replaceChildren();
    for (const r of data.rows) {
      const li = el("li", r.graded ? "graded" : "ungraded");
      li.dataset.anon = r.anon;
      const b = el("button", "row");
      b.type = "button";
      b.appendChild(el("span", "mark", r.graded ? "✓" : "○"));
      b.appendChild(el("span", "who", r.name ? r.name : "#" + r.pos));
      b.appendChild(el("span", "sc", r.graded ? fmt(r.score) : (r.empty ? "empty" : "")));
      if (r.group) b.appendChild(el("span", "grp", "G" + r.group));
      b.addEventListener("click", () => open(r.anon));
      li.appendChild(b);
      list.appendChild(li);
    }
    renderProgress(data.progress);
    markListed();
  }

  function markListed() {
    for (const li of document.querySelectorAll("#answer-list li")) {
      const here = current && li.dataset.anon === current.anon;
      li.classList.toggle("current", here);
      if (here) li.setAttribute("aria-current", "true"); else li.removeAttribute("aria-current");
    }
  }

  function updateListRow(a) {
    const li = document.querySelector('#answer-list li[data-anon="' + CSS.escape(a.anon) + '"]');
    if (!li) return;
    li.className = (a.grade ? "graded" : "ungraded") + (current && current.anon === a.anon ? " current" : "");
    li.querySelector(".mark").textContent = a.grade ? "✓" : "○";
    li.querySelector(".sc").textContent = a.grade ? fmt(a.grade.score) : "";
  }

  // ------------------------------------------------------------------ navigation

  async function open(anon) {
    if (!anon) return;
    await saving;
    try {
      const a = await call("GET", answerUrl(anon));
      render(a);
      const wanted = Math.floor((a.pos - 1) / pageSize) + 1;
      if (wanted !== page || !document.querySelector('#answer-list li[data-anon="' + CSS.escape(a.anon) + '"]')) {
        await loadList(wanted);
      }
      say("");
    } catch (e) {
      say(e.message, "error");
    }
  }

  async function move(to) {
    if (!current) return;
    await saving;
    try {
      const r = await call("GET", answerUrl(current.anon, "/move?to=" + to));
      if (r.anon) await open(r.anon);
      else say(to === "next-ungraded" ? "Every answer to " + qid.toUpperCase() + " is graded." :
        (to === "next" ? "This is the last answer." : "This is the first answer."));
    } catch (e) {
      say(e.message, "error");
    }
  }

  // ------------------------------------------------------------------ grading

  function gradeBody() {
    const items = itemButtons.filter((b) => b.getAttribute("aria-pressed") === "true")
      .map((b) => parseInt(b.dataset.item, 10));
    const adj = parseFloat($("adjustment").value);
    return {
      items, adjustment: Number.isFinite(adj) ? adj : 0, comment: $("comment").value,
      grader: $("grader").value, names: showNames() ? 1 : 0, layout: asWritten ? "written" : "reflow",
    };
  }

  let queued = 0;           // saves not answered yet: until the last one is, the page's state wins

  function save(extra) {
    if (!current) return saving;
    const anon = current.anon;
    renderScore(true);
    queued += 1;
    saving = saving.then(async () => {
      // the state as it is now (keys pressed while earlier saves were in flight included)
      const data = Object.assign(gradeBody(), extra || {});
      // the latest event this page knows of: a grade given meanwhile elsewhere is a conflict (409)
      data.expected_event = current && current.anon === anon && current.grade ? current.grade.event : null;
      try {
        const a = await call("POST", answerUrl(anon, "/grade"), data);
        queued -= 1;
        if (current && current.anon === anon) {
          if (queued > 0) {            // more keys were pressed: keep them, take the server's facts
            current.grade = a.grade;
            renderTotals(a);
            renderProgress(a.progress);
          } else {
            render(a);
          }
        }
        updateListRow(a);
        say(a.grade ? "Saved: " + fmt(a.grade.score) + " / " + fmt(a.max) : "Back to not graded.", "ok");
        watchReports();
      } catch (e) {
        queued -= 1;
        say(e.message, "error");
        if (e.status === 409 && current && current.anon === anon) {
          const fresh = await call("GET", answerUrl(anon));
          render(fresh);
        }
      }
    });
    return saving;
  }

  function toggleItem(n) {
    const b = itemButtons[n - 1];
    if (!b || !current) return;
    b.setAttribute("aria-pressed", b.getAttribute("aria-pressed") === "true" ? "false" : "true");
    save();
  }

  function nudge(delta) {
    const input = $("adjustment");
    input.value = fmt((parseFloat(input.value) || 0) + delta);
    save();
  }

  function addBankComment(i) {
    if (!current || !current.comments[i]) return;
    const box = $("comment");
    const text = current.comments[i].text;
    box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n" + text : text;
    save();
  }

  async function done() {
    if (!current) return;
    if (!current.grade) await save();
    else await saving;
    await move("next-ungraded");
  }

  function askGroup() {
    if (!current || !current.group) { say("This answer is in no group of near-identical answers."); return; }
    const items = gradeBody().items.length;
    $("confirm-text").textContent = "Give this grade (" + items + " item(s), adjustment " +
      fmt(gradeBody().adjustment) + ", the comment) to all " + current.group.size +
      " answers of group " + current.group.id + "?";
    $("confirm").hidden = false;
    confirmAction = async () => {
      const anon = current.anon;
      await saving;
      try {
        const a = await call("POST", answerUrl(anon, "/grade-group"), gradeBody());
        render(a);
        await loadList(page);
        say("Graded " + a.applied_to + " answers of group " + a.group.id + ".", "ok");
        watchReports();
      } catch (e) {
        say(e.message, "error");
      }
    };
  }

  // ------------------------------------------------------------------ reports

  async function refreshReports() {
    $("report-status").textContent = "updating reports…";
    try {
      const s = await call("POST", "/api/refresh", {});
      $("report-status").textContent = "reports updated " + s.last_refresh;
    } catch (e) {
      $("report-status").textContent = e.message;
    }
  }

  function watchReports() {
    $("report-status").textContent = "reports: update pending";
    if (statusTimer) return;
    statusTimer = setInterval(async () => {
      try {
        const s = await call("GET", "/api/status");
        if (s.error) $("report-status").textContent = s.error;
        else if (!s.pending && s.last_refresh) {
          $("report-status").textContent = "reports updated " + s.last_refresh;
          clearInterval(statusTimer);
          statusTimer = null;
        }
      } catch (e) {              // the server stopped or the network is gone: stop asking
        $("report-status").textContent = "cannot reach the grading server: " + e.message;
        clearInterval(statusTimer);
        statusTimer = null;
      }
    }, 1000);
  }

  // ------------------------------------------------------------------ keyboard

  function inField(t) {
    return t && (t.tagName === "INPUT" && t.type !== "checkbox" || t.tagName === "TEXTAREA");
  }

  document.addEventListener("keydown", (e) => {
    if (!$("confirm").hidden) {
      if (e.key === "y" || e.key === "Y") { $("confirm").hidden = true; const f = confirmAction; confirmAction = null; if (f) f(); }
      else if (e.key === "Escape" || e.key === "n") { $("confirm").hidden = true; confirmAction = null; }
      e.preventDefault();
      return;
    }
    if (!$("help").hidden) {
      if (e.key === "Escape" || e.key === "?") { $("help").hidden = true; e.preventDefault(); }
      return;
    }
    const t = e.target;
    if (inField(t)) {
      if (t.id === "comment" && (e.key === "Escape" || (e.key === "Enter" && (e.ctrlKey || e.metaKey)))) {
        e.preventDefault(); t.blur();
      } else if (t.id === "adjustment" && (e.key === "Enter" || e.key === "Escape")) {
        e.preventDefault(); t.blur();
      } else if (t.id === "grader" && (e.key === "Enter" || e.key === "Escape")) {
        e.preventDefault(); t.blur();
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const digit = /^Digit([1-9])$/.exec(e.code);
    if (digit && e.shiftKey) { addBankComment(parseInt(digit[1], 10) - 1); e.preventDefault(); return; }
    if (digit || /^[1-9]$/.test(e.key)) { toggleItem(parseInt(digit ? digit[1] : e.key, 10)); e.preventDefault(); return; }
    switch (e.key) {
      case "j": case "ArrowRight": move("next"); break;
      case "k": case "ArrowLeft": move("prev"); break;
      case "n": move("next-ungraded"); break;
      case "Enter": done(); break;
      case "a": $("adjustment").focus(); $("adjustment").select(); break;
      case "+": case "=": nudge(0.5); break;
      case "-": case "_": nudge(-0.5); break;
      case "c": $("comment").focus(); break;
      case "x": if (current && current.grade) save({ clear: true }); break;
      case "g": askGroup(); break;
      case "s": $("show-names").checked = !$("show-names").checked; namesChanged(); break;
      case "r": refreshReports(); break;
      case "w": asWritten = !asWritten; if (current) open(current.anon); break;
      case "q": {
        const i = questionIds.indexOf(qid);
        location.href = "/q/" + encodeURIComponent(questionIds[(i + 1) % questionIds.length]);
        break;
      }
      case "?": $("help").hidden = false; break;
      default: return;
    }
    e.preventDefault();
  });

  function namesChanged() {
    if (current) open(current.anon);
    loadList(page);
  }

  // ------------------------------------------------------------------ wiring

  itemButtons.forEach((b, i) => b.addEventListener("click", () => toggleItem(i + 1)));
  // a clicked button keeps no focus, so the next Enter means "done" and not "click it again"
  document.addEventListener("click", (e) => {
    const b = e.target.closest && e.target.closest("button");
    if (b) b.blur();
  });
  $("adjustment").addEventListener("change", () => save());
  $("comment").addEventListener("change", () => save());
  $("done").addEventListener("click", done);
  $("clear").addEventListener("click", () => { if (current && current.grade) save({ clear: true }); });
  $("refresh").addEventListener("click", refreshReports);
  $("show-names").addEventListener("change", namesChanged);
  $("page-prev").addEventListener("click", () => loadList(page - 1));
  $("page-next").addEventListener("click", () => loadList(page + 1));
  const storedGrader = localStorage.getItem("hwgrader-grader");
  if (storedGrader) $("grader").value = storedGrader;
  $("grader").addEventListener("change", () => localStorage.setItem("hwgrader-grader", $("grader").value.trim()));

  const start = decodeURIComponent(location.hash.slice(1)) || body.dataset.first;
  if (start) open(start);
  else { loadList(1); say("No answers to grade yet."); }
})();
