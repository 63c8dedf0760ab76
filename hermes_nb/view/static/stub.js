// hermes_nb's chat view, as every run's widget carries it: its comm_open sends this (compacted,
// hermes_nb/view/widget.py), so it only chooses. The view is the extension's if it registered
// this version V (= VIEW_PROTOCOL, labextension/src/view/protocol.ts); else the kernel's one
// loader widget renders it (static/loader.js, sent once per kernel): this model's "loader" is
// that widget's reference, and anywidget's host.getWidget (0.11+) gives its exports.
const V = 2;
export default {
  async render(p) {
    const o = globalThis.__hermes_nb_view__;
    if (o?.version === V) return o.render(p);
    try {
      return (await p.host.getWidget(p.model.get("loader"))).exports.render(p);
    } catch (e) {
      p.el.textContent = p.host ? e?.message ?? String(e) : "The chat view needs anywidget 0.11+.";
    }
  },
};
