/** The playground's CSS (inline in the page). */
export const PLAYGROUND_STYLE = `
:root {
  --bg: #f7f7f5; --panel: #ffffff; --ink: #1d1d1f; --muted: #6b6b70; --line: #dedede;
  --accent: #2f5d8a; --unshifted: transparent; --marginal: #ffe28a; --shifted: #ff9f9f;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #18181a; --panel: #222226; --ink: #ececee; --muted: #9a9aa2; --line: #38383e;
    --accent: #7fb0e0; --marginal: #7a6320; --shifted: #80363a; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
header { padding: 1.2rem 2rem 0.4rem; }
header h1 { margin: 0; font-size: 1.4rem; }
header h1 span { color: var(--muted); font-weight: 400; }
header p { margin: 0.4rem 0 0; color: var(--muted); max-width: 60rem; line-height: 1.4; }
main { padding: 0.8rem 2rem 2rem; }
.notice, .unresolved { margin: 0 0 0.8rem; padding: 0.6rem 1rem; border-radius: 8px; border: 1px solid #e0b100;
  background: #fff6d6; color: #5c4500; }
.unresolved { margin-bottom: 0.6rem; padding: 0.3rem 0.6rem; font-size: 0.85rem; white-space: pre-wrap; }
@media (prefers-color-scheme: dark) {
  .notice, .unresolved { background: #3a3114; color: #f3dc8c; border-color: #7a6320; }
}
.controls { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; }
.label { font-weight: 600; display: block; margin-bottom: 0.3rem; }
textarea { width: 100%; font: inherit; padding: 0.5rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--ink); resize: vertical; }
.field-error { margin: 0.3rem 0 0; color: #c0392b; font-size: 0.9rem; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin-top: 0.6rem; }
.row label { color: var(--muted); font-size: 0.9rem; }
.row input, .row select { font: inherit; margin-left: 0.3rem; padding: 0.2rem 0.3rem; width: 6rem;
  background: var(--bg); color: var(--ink); border: 1px solid var(--line); border-radius: 4px; }
.row select { width: auto; max-width: 18rem; }
.spacer { flex: 1; }
button { font: inherit; padding: 0.4rem 1rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--panel); color: var(--ink); cursor: pointer; }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: default; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 0.8rem 0 0; display: flex;
  flex-wrap: wrap; gap: 0.4rem 1.6rem; }
legend { color: var(--muted); font-size: 0.9rem; padding: 0 0.3rem; }
fieldset label { display: flex; gap: 0.4rem; align-items: baseline; }
fieldset label small { color: var(--muted); white-space: pre-wrap; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin-top: 1rem; }
@media (max-width: 800px) { .columns { grid-template-columns: 1fr; } }
.column { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 0.8rem 1rem;
  min-height: 12rem; display: flex; flex-direction: column; }
.column h2 { margin: 0 0 0.6rem; font-size: 1rem; }
.column h2 small { color: var(--muted); font-weight: 400; margin-left: 0.4rem; }
.column[data-state="running"] h2::after { content: " \\2026"; color: var(--accent); }
.tokens { white-space: pre-wrap; line-height: 1.7; font-family: ui-monospace, "SF Mono", Menlo, monospace;
  font-size: 0.92rem; flex: 1; word-break: break-word; max-height: 60vh; overflow-y: auto; }
.meta { color: var(--muted); font-size: 0.85rem; margin-top: 0.6rem; border-top: 1px solid var(--line);
  padding-top: 0.4rem; min-height: 1.2rem; }
.meta .error { color: #c0392b; }
.tok { border-radius: 3px; font-style: normal; }
.tok.unshifted { background: var(--unshifted); }
.tok.marginal { background: var(--marginal); }
.tok.shifted { background: var(--shifted); }
.tok.eos { font-size: 0.75rem; padding: 0 0.2rem; margin-left: 0.2rem; color: var(--muted); }
.legend { display: flex; flex-wrap: wrap; gap: 0.6rem 1.6rem; margin-top: 1rem; color: var(--muted);
  font-size: 0.9rem; }
.legend .tok { padding: 0 0.3rem; color: var(--ink); font-family: ui-monospace, Menlo, monospace;
  border: 1px solid var(--line); }
`;
