// hermes_nb chat view loader (every run's comm_open carries it: keep it small; why and how:
// hermes_nb/view/widget.py). The view is the extension's if it registered this VERSION (= VIEW_PROTOCOL,
// labextension/src/view/protocol.ts), else the kernel's fallback module, fetched once per page.
const VERSION = 2;
const RETRY_MS = 10000;

function fallback(model, signal) {
  const pages = (globalThis.__hermes_nb_fallback__ ??= {});
  const entry = (pages[VERSION] ??= { sentAt: -Infinity, done: false });
  entry.promise ??= new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
  const ask = () => {
    if (entry.done || performance.now() - entry.sentAt < RETRY_MS - 100) return;
    entry.sentAt = performance.now();
    try {
      model.send({ type: "code" });
    } catch (err) {} // closing: another view asks
  };
  const onCode = async (msg) => {
    if (msg?.type !== "code" || entry.done) return;
    entry.done = true;
    try {
      if (typeof msg.js !== "string") throw new Error(msg.error || "No chat view came.");
      const url = URL.createObjectURL(new Blob([msg.js], { type: "text/javascript" }));
      const view = (await import(url)).default;
      URL.revokeObjectURL(url);
      if (view?.version !== VERSION) throw new Error("The kernel's chat view does not match this widget: reinstall hermes-nb.");
      const style = document.createElement("style");
      style.textContent = msg.css ?? "";
      document.head.appendChild(style);
      entry.resolve(view);
    } catch (err) {
      entry.reject(err);
    }
  };
  const timer = setInterval(ask, RETRY_MS);
  const stop = () => {
    clearInterval(timer);
    model.off("msg:custom", onCode);
  };
  signal?.addEventListener("abort", stop); // the view was removed while it waited
  model.on("msg:custom", onCode);
  ask();
  return entry.promise.finally(stop);
}

async function render(props) {
  const own = globalThis.__hermes_nb_view__;
  if (own?.version === VERSION) return own.render(props);
  try {
    const view = await fallback(props.model, props.signal);
    if (!props.signal?.aborted) return view.render(props);
  } catch (err) {
    const line = document.createElement("div");
    line.className = "hnb-chat-unavailable";
    line.textContent = err?.message ?? String(err);
    props.el.replaceChildren(line);
  }
}

export default { render };
