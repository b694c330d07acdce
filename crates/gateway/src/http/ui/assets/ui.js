// mcpgate web page: the live parts. Served from /ui/assets/ (the page's
// Content-Security-Policy allows no inline script). Follows a run's log over
// SSE (EventSource resumes after a dropped connection with Last-Event-ID),
// and wires the copy buttons.
"use strict";

(function () {
  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var el = document.getElementById(b.getAttribute("data-copy"));
        if (!el) return;
        var text = el.textContent;
        var done = function () { b.textContent = "Copied"; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(text).then(done, function () { select(el); });
        } else {
          select(el);
        }
      });
    });
  }

  function select(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }

  var FINAL = ["succeeded", "failed", "cancelled", "timed_out"];

  function line(ev) {
    switch (ev.type) {
      case "state":
        return ["ev-state", "[run] " + ev.state + (ev.reason ? ": " + ev.reason : "")];
      case "output":
        return ev.stream === "stderr" ? ["ev-stderr", ev.line] : ["ev-out", ev.line];
      case "agent_started":
        return ["ev-state", "[agent] started" + (ev.model ? " (model " + ev.model + ")" : "")];
      case "assistant_text":
        return ["ev-assistant", ev.text];
      case "tool_call":
        return ["ev-tool", "→ tool call " + ev.name + " " + JSON.stringify(ev.input)];
      case "tool_result":
        return ["ev-result", (ev.is_error ? "← tool error " : "← tool result ") + ev.text];
      case "agent_result":
        return [ev.is_error ? "ev-stderr" : "ev-state",
          "[agent] " + (ev.is_error ? "failed" : "done") +
          (ev.turns ? " after " + ev.turns + " turns" : "") + (ev.text ? ": " + ev.text : "")];
      case "notice":
        return ["ev-stderr", "[notice] " + ev.message];
      default:
        return ["ev-out", "[" + ev.type + "] " + JSON.stringify(ev)];
    }
  }

  function followLog() {
    var log = document.getElementById("log");
    if (!log || !window.EventSource) return;
    var status = document.getElementById("log-status");
    var stateCell = document.getElementById("run-state");
    var startedFinal = FINAL.indexOf(log.getAttribute("data-state")) >= 0;
    var last = 0;
    var es = new EventSource(log.getAttribute("data-events"));
    var say = function (t) { if (status) status.textContent = t; };
    es.onopen = function () { say(startedFinal ? "log" : "following live"); };
    es.onerror = function () {
      // The browser reconnects by itself, sending Last-Event-ID; a refusal closes it.
      say(es.readyState === EventSource.CLOSED ? "the log is not available" : "reconnecting…");
    };
    es.onmessage = function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (ev.error) { say(ev.error); es.close(); return; }
      if (typeof ev.seq === "number") {
        if (ev.seq <= last) return;
        last = ev.seq;
      }
      var parts = line(ev);
      var div = document.createElement("div");
      div.className = parts[0];
      div.textContent = parts[1];
      log.appendChild(div);
      log.scrollTop = log.scrollHeight;
      if (ev.type === "state") {
        if (stateCell) {
          stateCell.textContent = ev.state;
          stateCell.className = "state-" + ev.state;
        }
        log.setAttribute("data-seen", ev.state);
        if (FINAL.indexOf(ev.state) >= 0) {
          es.close();
          say("ended: " + ev.state);
          // Cost, artifacts and the cancel button change with the end.
          if (!startedFinal) window.location.reload();
        }
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    followLog();
  });
})();
