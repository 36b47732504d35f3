"""StreamingAudioPlayer: plays a TTS job's parts as they arrive, before the whole text is spoken.

Why a custom widget (anywidget, a few lines of ES module): an <audio> element cannot append to what
it plays, and ipywidgets.Audio restarts when its value changes. This widget decodes each part with
the Web Audio API and schedules it right after the previous one, so playback starts with the first
sentence and runs on without gaps while later parts are still being generated.

Design:
- `parts` is a list of encoded audio files (bytes, sent as binary comm buffers), appended from the
  job manager's thread as chunks arrive on Runpod's `/stream`.
- Playback state lives per *model* in the browser, not per view: re-rendering the output (the job's
  display updates once more when the job ends) must not start the audio over.
- When the job ends, `whole` holds the complete file and the widget shows a normal <audio controls>
  for replaying and seeking.
- Browsers allow sound only after a user gesture; the play button is that gesture where autoplay
  is refused.
"""

from __future__ import annotations

import anywidget
import traitlets

__all__ = ["StreamingAudioPlayer"]

_ESM = r"""
const states = new WeakMap();  // model -> playback state shared by all views of it

function stateOf(model) {
  let state = states.get(model);
  if (!state) {
    state = { ctx: null, next: 0, scheduled: 0, chain: Promise.resolve(), views: new Set() };
    states.set(model, state);
  }
  return state;
}

function bufferOf(view) {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

function schedule(model, state) {
  const parts = model.get("parts") || [];
  while (state.scheduled < parts.length) {
    const part = parts[state.scheduled++];
    state.chain = state.chain.then(async () => {
      const audio = await state.ctx.decodeAudioData(bufferOf(part));
      const source = state.ctx.createBufferSource();
      source.buffer = audio;
      source.connect(state.ctx.destination);
      state.next = Math.max(state.next, state.ctx.currentTime + 0.05);
      source.onended = () => state.views.forEach((refresh) => refresh());  // "play" again once silent
      source.start(state.next);
      state.next += audio.duration + model.get("pause");
      state.views.forEach((refresh) => refresh());
    }).catch((error) => console.error("rp_notebook: could not play a part", error));
  }
}

function start(model, state) {
  if (!state.ctx) {
    state.ctx = new AudioContext();
    state.ctx.onstatechange = () => state.views.forEach((refresh) => refresh());
  }
  state.ctx.resume();
  schedule(model, state);
}

export default {
  render({ model, el }) {
    const state = stateOf(model);
    el.classList.add("rp-stream-player");
    const button = document.createElement("button");
    button.className = "rp-stream-play jupyter-button";
    const status = document.createElement("div");
    status.className = "rp-stream-status";
    const label = document.createElement("span");
    label.className = "rp-stream-label";
    label.style.marginLeft = "8px";
    const whole = document.createElement("audio");
    whole.controls = true;
    whole.className = "rp-stream-whole";
    whole.style.display = "none";
    el.append(status, button, label, whole);

    const refresh = () => {
      const parts = (model.get("parts") || []).length;
      const total = model.get("total");
      // Playing = sound scheduled ahead; a running context with nothing left to play is not playing.
      const playing = state.ctx && state.ctx.state === "running" && state.ctx.currentTime < state.next;
      status.textContent = model.get("status");
      button.textContent = playing ? "❚❚ pause" : "▶ play";
      label.textContent = `${parts}${total ? " of " + total : ""} parts received` + (model.get("done") ? ", all done" : "");
      const data = model.get("whole");
      if (data && data.byteLength && !whole.src) {
        whole.src = URL.createObjectURL(new Blob([bufferOf(data)], { type: model.get("mime") }));
        whole.style.display = "block";
      }
    };
    state.views.add(refresh);
    button.addEventListener("click", () => {
      if (state.ctx && state.ctx.state === "running" && state.ctx.currentTime < state.next) state.ctx.suspend();
      else start(model, state);
      refresh();
    });
    const onParts = () => { if (state.ctx) schedule(model, state); refresh(); };
    model.on("change:parts", onParts);
    model.on("change:whole", refresh);
    model.on("change:done", refresh);
    model.on("change:status", refresh);
    if (model.get("autoplay") && !state.ctx) {
      try { start(model, state); } catch (error) { /* no user gesture yet: the button starts it */ }
    }
    refresh();
    return () => {
      state.views.delete(refresh);
      model.off("change:parts", onParts);
      model.off("change:whole", refresh);
      model.off("change:done", refresh);
      model.off("change:status", refresh);
    };
  },
};
"""


class StreamingAudioPlayer(anywidget.AnyWidget):
    """Audio parts played back to back as they arrive; the whole file once the job is done."""

    _esm = _ESM
    parts = traitlets.List(traitlets.Bytes()).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    mime = traitlets.Unicode("audio/wav").tag(sync=True)
    pause = traitlets.Float(0.2).tag(sync=True)
    autoplay = traitlets.Bool(True).tag(sync=True)
    done = traitlets.Bool(False).tag(sync=True)
    whole = traitlets.Bytes(b"").tag(sync=True)
    #: The job's status line (queued, running, elapsed time), kept current by the job manager.
    status = traitlets.Unicode("").tag(sync=True)

    def add_part(self, data: bytes, total: int = 0) -> None:
        # A new list, so traitlets sees a change and syncs it.
        self.parts = [*self.parts, data]
        if total:
            self.total = total

    def __repr__(self) -> str:
        return f"StreamingAudioPlayer({len(self.parts)} parts{', done' if self.done else ''})"
