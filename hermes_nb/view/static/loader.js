// hermes_nb's chat view loader: the module of the kernel's one loader widget (_ViewLoader,
// hermes_nb/view/widget.py), so it reaches a page once per kernel, not with every run. A run's
// widget (static/stub.js) renders with the extension's view when it registered this version V;
// else it calls render() from this widget's exports (anywidget's initialize result, which
// host.getWidget hands to the run's widget). The fallback module is fetched once per page: the
// first view sends {type: "code"} on this widget's comm (again every 10 s while none came), the
// kernel answers with the module (js) and its stylesheet (css), or with a sentence (error) when it
// has none; every view awaits the one promise kept on globalThis, and gives up waiting when it is
// removed (signal).
const V = 2;
const g = globalThis;
function fallback(m, signal) {
  const e = ((g.__hermes_nb_fallback__ ??= {})[V] ??= {});
  e.p ??= new Promise((ok, no) => Object.assign(e, { ok, no }));
  const ask = () => {
    if (e.done || performance.now() - (e.at ?? -1e9) < 9900) return;
    e.at = performance.now();
    // A loader that is closing cannot send: another view asks.
    try {
      m.send({ type: "code" });
    } catch {}
  };
  const on = async (msg) => {
    if (msg?.type !== "code" || e.done) return;
    e.done = 1;
    try {
      if (typeof msg.js != "string") throw Error(msg.error || "No chat view came.");
      const url = URL.createObjectURL(new Blob([msg.js], { type: "text/javascript" }));
      const view = (await import(url)).default;
      URL.revokeObjectURL(url);
      if (view?.version !== V) throw Error("This chat view does not match its kernel: reinstall hermes-nb.");
      document.head.append(Object.assign(document.createElement("style"), { textContent: msg.css ?? "" }));
      e.ok(view);
    } catch (err) {
      e.no(err);
    }
  };
  const timer = setInterval(ask, 1e4);
  const stop = () => (clearInterval(timer), m.off("msg:custom", on));
  signal?.addEventListener("abort", stop);
  m.on("msg:custom", on);
  ask();
  return e.p.finally(stop);
}
function initialize({ model }) {
  return {
    async render(p) {
      try {
        const view = await fallback(model, p.signal);
        if (!p.signal?.aborted) return view.render(p);
      } catch (err) {
        const line = Object.assign(document.createElement("div"), { className: "hnb-chat-unavailable" });
        line.textContent = err?.message ?? String(err);
        p.el.replaceChildren(line);
      }
    },
  };
}
export default { initialize };
