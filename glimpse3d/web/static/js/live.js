// Live status of one project: event stream, polling fallback.

import { ACTIVE_STATUSES, API, ApiError, EXPORT_FORMATS, IMAGE_EXTENSIONS, IMAGE_TYPES, NUM_VIEWS, TERMINAL_STATUSES, api } from "./api.js";
import {
  MAX_UPLOAD_BYTES, IMAGE_EXT, POLL_MS, LIST_POLL_MS, STREAM_RETRY_POLLS, STATUS_LABELS, shownStatus, h, $, formatBytes, formatDate, fmt, samePath, toast, showError, statusBadge, progressBar, setProgress, checkFile, iterationsSelect,
} from "./ui.js";

// ---------------------------------------------------------------- live updates

/**
 * Follows a project: EventSource on /events (each message triggers a status refresh), falling
 * back to polling /status every 2 s when the stream fails. Stops when no job is active.
 */
export class LiveStatus {
  constructor(id, onStatus, onMode) {
    this.id = id;
    this.onStatus = onStatus;
    this.onMode = onMode;
    this.es = null;
    this.timer = null;
    this.inflight = null;
    this.pending = false;
    this.stopped = false;
    this.last = null;
  }

  start() {
    this.stopped = false;
    if (!this.openStream()) this.startPolling();
    this.refresh();
  }

  /** Open the event stream; false when EventSource is unavailable. */
  openStream() {
    if (this.es) return true;
    if (typeof EventSource === "undefined") return false;
    try {
      const es = new EventSource(api.eventsUrl(this.id));
      this.es = es;
      es.onopen = () => { this.stopPolling(); this.onMode("stream"); };
      es.onmessage = (e) => this.onEvent(e.data);
      for (const name of ["status", "end", "deleted"]) {
        es.addEventListener(name, (e) => this.onEvent(e.data));
      }
      es.onerror = () => {
        // The stream ended or is unavailable: fall back to polling while a job runs.
        es.close();
        if (this.es === es) this.es = null;
        if (!this.stopped) this.startPolling();
      };
      return true;
    } catch {
      return false;
    }
  }

  onEvent(raw) {
    let data = null;
    try { data = JSON.parse(raw); } catch { data = null; }
    if (data && typeof data === "object") {
      const p = data.project ?? data;
      if (p.status || p.progress_percentage !== undefined) this.onStatus(null, p);
    }
    this.refresh();
  }

  startPolling() {
    if (this.timer || this.stopped) return;
    this.onMode("polling");
    let polls = 0;
    this.timer = setInterval(() => {
      this.refresh();
      // a stream that failed once (a proxy hiccup) is tried again while the job runs
      if (++polls % STREAM_RETRY_POLLS === 0 && !this.stopped) this.openStream();
    }, POLL_MS);
  }

  stopPolling() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Fetch the status now (coalescing overlapping requests). */
  async refresh() {
    if (this.inflight) { this.pending = true; return this.inflight; }
    this.inflight = (async () => {
      try {
        const status = await api.status(this.id);
        this.last = status;
        if (!this.stopped) this.onStatus(status, status.project);
        const p = status.project;
        const active = p.job_active ?? ACTIVE_STATUSES.has(p.status);
        if (!active && (TERMINAL_STATUSES.has(p.status) || p.job_active === false)) this.idle();
      } catch (err) {
        if (!this.stopped) this.onStatus(null, null, err);
      }
    })();
    await this.inflight;
    this.inflight = null;
    if (this.pending && !this.stopped) { this.pending = false; return this.refresh(); }
    return undefined;
  }

  /** No job: close the stream and stop polling (start() again after queueing a job). */
  idle() {
    this.stopPolling();
    if (this.es) { this.es.close(); this.es = null; }
    this.onMode("idle");
  }

  stop() {
    this.stopped = true;
    this.idle();
  }
}

