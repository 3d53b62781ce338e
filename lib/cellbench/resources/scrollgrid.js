// cellbench's scrolling sample grid (a Streamlit v2 component, no iframe): square tiles in
// one scrolling box, appended in chunks as the user scrolls; each image is an
// <img loading="lazy"> drawn by the tile server on its first request. A click on a tile
// sends its sample id to Python (trigger "open"). Captions are set as text, never markup.
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".cbg-root");
  const sig = JSON.stringify([data.base, data.items.length, data.tile, data.items.slice(0, 3),
                              data.items.slice(-3)]);
  if (root.dataset.sig === sig) return;  // the same grid: keep its scroll position
  root.dataset.sig = sig;
  root.textContent = "";
  root.style.maxHeight = data.height + "px";  // a short grid takes only its rows
  root.style.setProperty("--cbg-tile", data.tile + "px");
  const CHUNK = 120;
  let shown = 0;
  const sentinel = document.createElement("div");
  sentinel.className = "cbg-sentinel";

  function tile(item) {
    const [k, sid, caption, state] = item;
    const fig = document.createElement("figure");
    fig.className = "cbg-tile cbg-" + state;
    fig.dataset.sample = sid;
    fig.title = "Open " + sid;
    fig.tabIndex = 0;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = sid;
    img.src = data.base + k + "_" + state + ".jpg";
    img.onerror = () => { fig.classList.add("cbg-failed"); };
    const cap = document.createElement("figcaption");
    const name = document.createElement("span");
    const value = document.createElement("span");
    name.textContent = sid;
    value.textContent = caption;
    cap.append(name, value);
    fig.append(img, cap);
    const open = () => setTriggerValue("open", sid);
    fig.addEventListener("click", open);
    fig.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return fig;
  }

  function more() {
    const end = Math.min(data.items.length, shown + CHUNK);
    const frag = document.createDocumentFragment();
    for (; shown < end; shown++) frag.append(tile(data.items[shown]));
    root.insertBefore(frag, sentinel);
    if (shown >= data.items.length) observer.disconnect();
  }

  root.append(sentinel);
  const observer = new IntersectionObserver(
    (entries) => { if (entries.some((e) => e.isIntersecting)) more(); },
    { root: root, rootMargin: "600px" }
  );
  more();
  observer.observe(sentinel);
  return () => observer.disconnect();
}
