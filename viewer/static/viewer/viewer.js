/* dicomsvc viewer: plain JavaScript, no dependencies.
 *
 * The token comes in the URL fragment (never sent to the server, never in its logs). The page removes it
 * from the address bar, exchanges it once for a session token (POST /viewer/api/session) and sends that
 * session token as a Bearer header on every data request. Images are fetched as blobs, decoded ahead of
 * time around the current position and drawn on a canvas, so scrolling shows them without waiting.
 */
(function () {
  "use strict";

  var API = "/viewer/api";
  var PREFETCH_PARALLEL = 4;
  var PREFETCH_RADIUS = 150;
  var CACHE_MAX = 400;

  var MESSAGES = {
    expired: ["This link has expired",
      "Viewer links are valid for a short time only.",
      "Ask for a new link in the application that sent you here."],
    used: ["This link has already been used",
      "It could be opened once only.",
      "Ask for a new link in the application that sent you here."],
    invalid: ["This link is not valid",
      "The link is incomplete or has been changed.",
      "Open it again from the application that sent you here, or ask for a new one."],
    missing: ["This link is not valid",
      "The address has no viewer token.",
      "Open the study from the application that gives access to it."],
    study: ["This study is not available",
      "The study of this link cannot be found any more.",
      "Contact the service that gave you the link."],
    session: ["Your viewing session has ended",
      "For your privacy, viewing sessions last a limited time.",
      "Open the study again from its link, or ask for a new one."],
    network: ["The viewer cannot reach the server",
      "Check your connection and reload the page.",
      ""]
  };

  var state = {
    session: null, role: "patient", view: null,
    series: null, images: [], index: 0,
    window: null, invert: false, zoom: 1, panX: 0, panY: 0, mode: "window",
    shownKey: null, drawn: null, wantKey: null
  };
  var cache = new Map();       // key -> {promise, image, url}
  var queue = [];              // keys waiting to be prefetched, nearest first
  var inflight = 0;
  var seriesToken = 0;         // bumps when the series changes, so stale answers are dropped
  var displayBusy = false;     // an image for the main view is being fetched
  var seriesImages = {};       // series UID -> its images (instances x frames)

  function $(id) { return document.getElementById(id); }

  // --- errors ---------------------------------------------------------------------------------
  function showError(kind) {
    var text = MESSAGES[kind] || MESSAGES.invalid;
    $("vw-error-title").textContent = text[0];
    $("vw-error-message").textContent = text[1];
    $("vw-error-hint").textContent = text[2];
    $("vw-loading").hidden = true;
    $("vw-app").hidden = true;
    $("vw-error").hidden = false;
    document.title = text[0];
    document.body.dataset.state = "error";
    document.body.dataset.error = kind;
  }

  function HttpError(status, body) { this.status = status; this.body = body; }

  function api(path, options) {
    options = options || {};
    var headers = options.headers || {};
    if (state.session) { headers.Authorization = "Bearer " + state.session; }
    return fetch(API + path, {
      method: options.method || "GET", headers: headers, body: options.body,
      credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer"
    }).then(function (response) {
      if (response.status === 401 && state.session) { showError("session"); }
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new HttpError(response.status, body);
        });
      }
      return response;
    });
  }

  function studyPath() { return "/studies/" + encodeURIComponent(state.view.studyUID); }
  function seriesPath(uid) { return studyPath() + "/series/" + encodeURIComponent(uid); }
  function instancePath(image) {
    return seriesPath(state.series.uid) + "/instances/" + encodeURIComponent(image.uid);
  }

  // --- header and series strip ----------------------------------------------------------------
  function formatDate(da) {
    if (!da || da.length !== 8) { return da || ""; }
    return da.slice(0, 4) + "-" + da.slice(4, 6) + "-" + da.slice(6, 8);
  }

  function fillHeader(view) {
    var p = view.patient, s = view.study;
    $("vw-patient-name").textContent = p.name || "(no name)";
    var pm = [];
    if (p.id) { pm.push("ID " + p.id); }
    if (p.birthDate) { pm.push("born " + formatDate(p.birthDate)); }
    if (p.sex) { pm.push({M: "male", F: "female", O: "other"}[p.sex] || p.sex); }
    $("vw-patient-meta").textContent = pm.join(" · ");
    $("vw-study-desc").textContent = s.description || "Study";
    var sm = [];
    if (s.date) { sm.push(formatDate(s.date)); }
    if (s.modalities && s.modalities.length) { sm.push(s.modalities.join("/")); }
    if (s.accessionNumber) { sm.push("Acc. " + s.accessionNumber); }
    $("vw-study-meta").textContent = sm.join(" · ");
    $("vw-role").textContent = state.role === "diagnostic" ? "Diagnostic" : "Patient view";
    $("vw-role").dataset.role = state.role;
    document.title = (s.description || "Study") + " – viewer";
  }

  function loadBlobImage(path) {
    return api(path).then(function (r) { return r.blob(); }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var img = new Image();
      img.src = url;
      return img.decode().then(function () { return {image: img, url: url}; }, function (e) {
        URL.revokeObjectURL(url);
        throw e;
      });
    });
  }

  function buildSeriesStrip(series) {
    var nav = $("vw-series");
    nav.textContent = "";
    series.forEach(function (s, i) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "vw-series-item";
      button.dataset.index = String(i);
      var thumb = document.createElement("div");
      thumb.className = "vw-thumb";
      var label = document.createElement("span");
      label.className = "vw-series-label";
      label.textContent = (s.modality ? s.modality + " " : "") + (s.description || ("Series " + (s.number || i + 1)));
      var count = document.createElement("span");
      count.className = "vw-series-count";
      count.textContent = s.instanceCount != null ? s.instanceCount + " img" : "";
      button.appendChild(thumb);
      button.appendChild(label);
      button.appendChild(count);
      button.addEventListener("click", function () { selectSeries(i); });
      nav.appendChild(button);
    });
    // Thumbnails after the first image: they must not delay it.
    return function loadThumbnails() {
      series.forEach(function (s, i) {
        loadBlobImage(seriesPath(s.uid) + "/thumbnail").then(function (loaded) {
          loaded.image.alt = "";
          var holder = nav.children[i].querySelector(".vw-thumb");
          holder.textContent = "";
          holder.appendChild(loaded.image);
        }, function () {
          nav.children[i].querySelector(".vw-thumb").classList.add("vw-thumb-none");
        });
      });
    };
  }

  // --- images ---------------------------------------------------------------------------------
  function sizeBucket() {
    // From the window, not the viewport element: known before the page is laid out, so the first
    // image can be asked for at once (the viewport is nearly the whole window anyway).
    var side = Math.max(window.innerWidth, window.innerHeight) * (window.devicePixelRatio || 1);
    var bucket = side <= 700 ? 512 : side <= 1400 ? 1024 : 2048;
    var image = state.images[state.index];
    if (image && image.rows && image.columns) {
      bucket = Math.min(bucket, Math.max(image.rows, image.columns));
    }
    return Math.max(bucket, 16);
  }

  function imageKey(index) {
    var image = state.images[index];
    if (!image) { return null; }
    var w = state.window;
    return [state.series.uid, image.uid, image.frame, state.size, w ? w.center : "", w ? w.width : ""].join("|");
  }

  function imagePath(index) {
    var image = state.images[index];
    var query = "?frame=" + image.frame + "&size=" + state.size;
    if (state.window) {
      query += "&windowCenter=" + encodeURIComponent(state.window.center) +
        "&windowWidth=" + encodeURIComponent(state.window.width);
    }
    return instancePath(image) + "/rendered" + query;
  }

  function fetchImage(index) {
    var key = imageKey(index);
    var entry = cache.get(key);
    if (entry) {
      cache.delete(key);      // re-insert: most recently used last
      cache.set(key, entry);
      return entry.promise;
    }
    entry = {image: null, url: null};
    entry.promise = loadBlobImage(imagePath(index)).then(function (loaded) {
      entry.image = loaded.image;
      entry.url = loaded.url;
      return loaded.image;
    }, function (error) {
      cache.delete(key);
      throw error;
    });
    cache.set(key, entry);
    trimCache();
    return entry.promise;
  }

  function trimCache() {
    while (cache.size > CACHE_MAX) {
      var oldest = cache.keys().next().value;
      var entry = cache.get(oldest);
      cache.delete(oldest);
      if (entry.url) { URL.revokeObjectURL(entry.url); }
    }
  }

  // Nearest first, four ahead in the direction of scrolling for each one behind.
  function schedulePrefetch() {
    queue = [];
    var n = state.images.length, dir = state.direction || 1;
    var ahead = 1, behind = 1;
    while (queue.length < Math.min(2 * PREFETCH_RADIUS, n - 1)) {
      var added = false;
      for (var k = 0; k < 4; k++, ahead++) {
        var i = state.index + dir * ahead;
        if (ahead <= PREFETCH_RADIUS && i >= 0 && i < n) { queue.push(i); added = true; }
      }
      var j = state.index - dir * behind;
      behind++;
      if (behind <= PREFETCH_RADIUS + 1 && j >= 0 && j < n) { queue.push(j); added = true; }
      if (!added && ahead > PREFETCH_RADIUS && behind > PREFETCH_RADIUS) { break; }
    }
    pump();
  }

  function pump() {
    var token = seriesToken;
    // The image on screen first: fetching ahead waits while it is on its way.
    while (!displayBusy && inflight < PREFETCH_PARALLEL && queue.length) {
      var index = queue.shift();
      if (cache.has(imageKey(index))) { continue; }
      inflight++;
      fetchImage(index).catch(function () { /* shown when displayed */ }).then(function () {
        inflight--;
        if (token === seriesToken) { pump(); }
      });
    }
  }

  // Show the current index with the current window; one request at a time, the latest state wins.
  function show() {
    if (!state.images.length) { return; }
    var index = state.index, key = imageKey(index);
    state.wantKey = key;
    $("vw-viewport").dataset.want = key;
    updatePosition();
    var entry = cache.get(key);
    if (entry && entry.image) { draw(entry.image, key, index); return; }
    // While one image is on its way, later wishes (a window drag, a fast scroll) only update wantKey;
    // the running load shows the latest wish when it ends, so requests never pile up.
    if (displayBusy) { return; }
    displayBusy = true;
    fetchImage(index).then(function (image) {
      displayBusy = false;
      if (state.wantKey === key) { draw(image, key, index); } else { show(); }
    }, function (error) {
      displayBusy = false;
      if (state.wantKey !== key) { show(); return; }
      pump();
      var box = $("vw-image-error");
      box.textContent = (error && error.body && error.body.detail) || "This image cannot be shown.";
      box.hidden = false;
    });
  }

  function draw(image, key, index) {
    state.drawn = image;
    state.shownKey = key;
    $("vw-image-error").hidden = true;
    paint();
    var canvas = $("vw-canvas");
    canvas.dataset.index = String(index);
    canvas.dataset.key = key;
    document.body.dataset.state = "ready";
    document.dispatchEvent(new CustomEvent("viewer:shown", {detail: {index: index, key: key}}));
    pump();
  }

  function paint() {
    var canvas = $("vw-canvas"), vp = $("vw-viewport");
    var dpr = window.devicePixelRatio || 1;
    var w = Math.max(1, Math.round(vp.clientWidth * dpr)), h = Math.max(1, Math.round(vp.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    var image = state.drawn;
    if (!image) { return; }
    var fit = Math.min(w / image.naturalWidth, h / image.naturalHeight) * state.zoom;
    var dw = image.naturalWidth * fit, dh = image.naturalHeight * fit;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    var x = (w - dw) / 2 + state.panX * dpr, y = (h - dh) / 2 + state.panY * dpr;
    ctx.drawImage(image, x, y, dw, dh);
    if (state.invert) {
      // White "difference" over the image only: the background stays black.
      ctx.globalCompositeOperation = "difference";
      ctx.fillStyle = "#fff";
      ctx.fillRect(x, y, dw, dh);
      ctx.globalCompositeOperation = "source-over";
    }
    $("vw-overlay-zoom").textContent = state.zoom !== 1 ? "Zoom " + Math.round(state.zoom * 100) + "%" : "";
  }

  function updatePosition() {
    var n = state.images.length, image = state.images[state.index];
    var text = "Image " + (state.index + 1) + " / " + n;
    if (image && image.frames > 1 && image.frames !== n) { text += " · frame " + image.frame + "/" + image.frames; }
    $("vw-position").textContent = text;
    var slider = $("vw-slider");
    slider.max = String(Math.max(n, 1));
    slider.value = String(state.index + 1);
    var w = state.window;
    $("vw-overlay-window").textContent = w ? "WC " + Math.round(w.center) + " / WW " + Math.round(w.width) : "";
  }

  function go(index) {
    index = Math.max(0, Math.min(state.images.length - 1, index));
    if (index === state.index && state.shownKey === imageKey(index)) { return; }
    if (index !== state.index) { state.direction = index > state.index ? 1 : -1; }
    state.index = index;
    show();
    schedulePrefetch();
  }

  // --- series ---------------------------------------------------------------------------------
  // One entry per frame: scrolling goes through the frames of multi-frame instances too.
  function imagesOf(series, instances) {
    var images = [];
    instances.forEach(function (inst) {
      for (var f = 1; f <= (inst.frames || 1); f++) {
        images.push({uid: inst.uid, frame: f, frames: inst.frames || 1, rows: inst.rows,
          columns: inst.columns, window: inst.window || null, modality: series.modality});
      }
    });
    return images;
  }

  function selectSeries(i) {
    var series = state.view.series[i];
    if (!series) { return Promise.resolve(); }
    seriesToken++;
    queue = [];
    state.series = series;
    state.images = [];
    state.index = 0;
    state.window = null;
    state.shownKey = null;
    if ($("vw-preset")) { $("vw-preset").value = ""; }
    Array.prototype.forEach.call($("vw-series").children, function (el, j) {
      el.classList.toggle("vw-active", j === i);
      el.setAttribute("aria-current", j === i ? "true" : "false");
    });
    $("vw-overlay-series").textContent = series.description || ("Series " + (series.number || i + 1));
    var token = seriesToken;
    var listed = seriesImages[series.uid] ? Promise.resolve(seriesImages[series.uid]) :
      api(seriesPath(series.uid) + "/instances").then(function (r) { return r.json(); });
    return listed.then(function (instances) {
        seriesImages[series.uid] = instances;
        if (token !== seriesToken) { return; }
        state.images = imagesOf(series, instances);
        state.index = 0;
        state.size = sizeBucket();
        show();
        schedulePrefetch();
      }, function (error) {
        if (error instanceof HttpError && error.status === 401) { return; }
        var box = $("vw-image-error");
        box.textContent = "This series cannot be shown.";
        box.hidden = false;
      });
  }

  // --- diagnostic tools -----------------------------------------------------------------------
  // Where a window drag starts when no window was chosen yet: the image's own window from its header
  // (WindowCenter/Width, else the stored value range through the rescale), read once per instance.
  var headerWindows = {};
  function headerWindow(image) {
    if (image.window) { return Promise.resolve({center: image.window.center, width: image.window.width}); }
    if (!headerWindows[image.uid]) {
      headerWindows[image.uid] = api(instancePath(image) + "/tags").then(function (r) { return r.json(); })
        .then(windowFromTags, function () { return {center: 40, width: 400}; });
    }
    return headerWindows[image.uid];
  }

  function windowFromTags(rows) {
    var tags = {};
    rows.forEach(function (row) { if (!row.depth && !(row.keyword in tags)) { tags[row.keyword] = row.value; } });
    function num(keyword, fallback) {
      var value = parseFloat(String(tags[keyword] || "").split("\\")[0]);
      return isFinite(value) ? value : fallback;
    }
    var center = num("WindowCenter", NaN), width = num("WindowWidth", NaN);
    if (isFinite(center) && width >= 1) { return {center: center, width: width}; }
    var bits = num("BitsStored", 8), signed = num("PixelRepresentation", 0) === 1;
    var low = num("SmallestImagePixelValue", signed ? -Math.pow(2, bits - 1) : 0);
    var high = num("LargestImagePixelValue", signed ? Math.pow(2, bits - 1) - 1 : Math.pow(2, bits) - 1);
    var slope = num("RescaleSlope", 1), intercept = num("RescaleIntercept", 0);
    var a = low * slope + intercept, b = high * slope + intercept;
    return {center: (a + b) / 2, width: Math.max(Math.abs(b - a), 1)};
  }

  function setWindow(w, dragging) {
    state.window = w ? {center: w.center, width: Math.max(1, w.width)} : null;
    show();
    // Mid-drag windows are passing values: fetch ahead only for the one the drag ends on.
    if (!dragging) { schedulePrefetch(); }
  }

  function setMode(mode) {
    state.mode = mode;
    Array.prototype.forEach.call(document.querySelectorAll(".vw-mode"), function (b) {
      b.setAttribute("aria-pressed", b.dataset.mode === mode ? "true" : "false");
    });
    $("vw-viewport").dataset.mode = mode;
  }

  function setZoom(zoom) {
    state.zoom = Math.max(0.25, Math.min(10, zoom));
    paint();
  }

  function toggleInvert() {
    state.invert = !state.invert;
    var b = $("vw-invert");
    if (b) { b.setAttribute("aria-pressed", state.invert ? "true" : "false"); }
    paint();
  }

  function reset() {
    state.zoom = 1; state.panX = 0; state.panY = 0; state.invert = false;
    var b = $("vw-invert");
    if (b) { b.setAttribute("aria-pressed", "false"); }
    var preset = $("vw-preset");
    if (preset) { preset.value = ""; }
    setWindow(null);
    paint();
  }

  function toggleTags(open) {
    var panel = $("vw-tags");
    open = open === undefined ? panel.hidden : open;
    panel.hidden = !open;
    $("vw-tags-toggle").setAttribute("aria-pressed", open ? "true" : "false");
    if (open) { loadTags(); }
    paint();
  }

  var tagsFor = null;
  function loadTags() {
    var image = state.images[state.index];
    if (!image || $("vw-tags").hidden || tagsFor === image.uid) { return; }
    tagsFor = image.uid;
    var body = $("vw-tags-rows");
    body.textContent = "";
    api(instancePath(image) + "/tags").then(function (r) { return r.json(); }).then(function (rows) {
      if (tagsFor !== image.uid) { return; }
      rows.forEach(function (row) {
        var tr = document.createElement("tr");
        [row.tag, row.keyword, row.vr, row.value].forEach(function (text, i) {
          var td = document.createElement("td");
          td.textContent = text;
          if (i === 1 && row.depth) { td.classList.add("vw-depth-" + Math.min(row.depth, 3)); }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      filterTags();
    }, function () { tagsFor = null; });
  }

  function filterTags() {
    var q = $("vw-tags-filter").value.trim().toLowerCase();
    Array.prototype.forEach.call($("vw-tags-rows").children, function (tr) {
      tr.hidden = q !== "" && tr.textContent.toLowerCase().indexOf(q) === -1;
    });
  }

  function download() {
    var image = state.images[state.index];
    if (!image) { return; }
    api(instancePath(image) + "/file").then(function (r) { return r.blob(); }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var a = document.createElement("a");
      a.href = url;
      a.download = image.uid + ".dcm";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    });
  }

  function installTools() {
    var tools = $("vw-diagnostic-tools").content.cloneNode(true);
    $("vw-toolbar").appendChild(tools);
    Array.prototype.forEach.call(document.querySelectorAll(".vw-mode"), function (b) {
      b.addEventListener("click", function () { setMode(b.dataset.mode); });
    });
    $("vw-preset").addEventListener("change", function (event) {
      var value = event.target.value;
      if (value === "default") { setWindow(null); return; }
      if (!value) { return; }
      var parts = value.split(",");
      setWindow({center: Number(parts[0]), width: Number(parts[1])});
    });
    $("vw-zoom-in").addEventListener("click", function () { setZoom(state.zoom * 1.25); });
    $("vw-zoom-out").addEventListener("click", function () { setZoom(state.zoom / 1.25); });
    $("vw-invert").addEventListener("click", toggleInvert);
    $("vw-reset").addEventListener("click", reset);
    $("vw-tags-toggle").addEventListener("click", function () { toggleTags(); });
    $("vw-tags-close").addEventListener("click", function () { toggleTags(false); });
    $("vw-tags-filter").addEventListener("input", filterTags);
    $("vw-download").addEventListener("click", download);
    setMode("window");
  }

  // --- input ----------------------------------------------------------------------------------
  function installInput() {
    var vp = $("vw-viewport");
    var diagnostic = state.role === "diagnostic";
    var wheelRest = 0;
    vp.addEventListener("wheel", function (event) {
      event.preventDefault();
      if (diagnostic && (event.ctrlKey || event.metaKey)) {
        setZoom(state.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
        return;
      }
      // One image per wheel notch; trackpads send many small deltas, so those add up to ~30 px first.
      wheelRest += event.deltaMode === 1 ? event.deltaY * 40 : event.deltaY;
      if (Math.abs(wheelRest) < 30) { return; }
      var step = wheelRest > 0 ? 1 : -1;
      wheelRest = 0;
      go(state.index + step);
    }, {passive: false});

    var drag = null;
    vp.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) { return; }
      vp.setPointerCapture(event.pointerId);
      var mode = diagnostic ? state.mode : "scroll";
      drag = {x: event.clientX, y: event.clientY, mode: mode, index: state.index,
        window: mode === "window" ? state.window : null, panX: state.panX, panY: state.panY};
      vp.dataset.dragReady = drag.mode !== "window" || drag.window ? "true" : "false";
      if (mode === "window" && !drag.window && state.images[state.index]) {
        var started = drag;
        headerWindow(state.images[state.index]).then(function (w) {
          started.window = w;
          vp.dataset.dragReady = "true";
        });
      }
      vp.focus({preventScroll: true});
    });
    vp.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      var dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (drag.mode === "window") {
        if (!drag.window) { return; }
        var scale = Math.max(drag.window.width / 256, 0.5);
        setWindow({center: drag.window.center + dy * scale, width: drag.window.width + dx * scale * 2}, true);
      } else if (drag.mode === "pan") {
        state.panX = drag.panX + dx;
        state.panY = drag.panY + dy;
        paint();
      } else {
        var perImage = Math.max(4, Math.min(20, vp.clientHeight / Math.max(state.images.length, 1)));
        go(drag.index + Math.round(dy / perImage));
      }
    });
    function endDrag() {
      if (drag && drag.mode === "window") { schedulePrefetch(); }
      drag = null;
    }
    vp.addEventListener("pointerup", endDrag);
    vp.addEventListener("pointercancel", endDrag);

    document.addEventListener("keydown", function (event) {
      if (event.target && (event.target.tagName === "INPUT" || event.target.tagName === "SELECT")) {
        if (event.target.id !== "vw-slider") { return; }
      }
      var handled = true;
      switch (event.key) {
        case "ArrowDown": case "ArrowRight": case "PageDown": go(state.index + 1); break;
        case "ArrowUp": case "ArrowLeft": case "PageUp": go(state.index - 1); break;
        case "Home": go(0); break;
        case "End": go(state.images.length - 1); break;
        default:
          handled = false;
          if (diagnostic && (event.key === "i" || event.key === "I")) { toggleInvert(); handled = true; }
          if (diagnostic && (event.key === "r" || event.key === "R")) { reset(); handled = true; }
      }
      if (handled) { event.preventDefault(); }
    });

    $("vw-slider").addEventListener("input", function (event) { go(Number(event.target.value) - 1); });
    $("vw-prev").addEventListener("click", function () { go(state.index - 1); });
    $("vw-next").addEventListener("click", function () { go(state.index + 1); });

    if (window.ResizeObserver) {
      new ResizeObserver(function () { paint(); }).observe(vp);
    } else {
      window.addEventListener("resize", paint);
    }
  }

  // Keep the tag panel on the current image, once scrolling pauses (each read is audited).
  var tagsTimer = null;
  document.addEventListener("viewer:shown", function () {
    if ($("vw-tags").hidden) { return; }
    clearTimeout(tagsTimer);
    tagsTimer = setTimeout(loadTags, 250);
  });

  // --- start ----------------------------------------------------------------------------------
  function tokenFromFragment() {
    var hash = window.location.hash.replace(/^#/, "");
    var token = null;
    hash.split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq > 0 && part.slice(0, eq) === "token") { token = decodeURIComponent(part.slice(eq + 1)); }
    });
    return token;
  }

  function start() {
    var token = tokenFromFragment();
    // Out of the address bar, history and bookmarks once read.
    if (window.location.hash) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (!token) { showError("missing"); return; }
    api("/session", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: token})
    }).then(function (r) { return r.json(); }).then(function (opened) {
      state.session = opened.session;
      state.role = opened.role;
      state.view = opened.view;
      seriesImages = opened.images || {};
      // Ask for the first image before building the page around it: it is what the person waits for.
      var firstSeries = opened.view.series[0];
      if (firstSeries && seriesImages[firstSeries.uid]) {
        state.series = firstSeries;
        state.images = imagesOf(firstSeries, seriesImages[firstSeries.uid]);
        state.index = 0;
        state.size = sizeBucket();
        if (state.images.length) { fetchImage(0).catch(function () { /* shown by show() */ }); }
      }
      document.body.dataset.role = opened.role;
      fillHeader(opened.view);
      var loadThumbnails = buildSeriesStrip(opened.view.series);
      if (opened.role === "diagnostic") { installTools(); }
      installInput();
      $("vw-loading").hidden = true;
      $("vw-app").hidden = false;
      if (!opened.view.series.length) {
        var box = $("vw-image-error");
        box.textContent = "This study has no images yet.";
        box.hidden = false;
        document.body.dataset.state = "ready";
        return;
      }
      var first = true;
      document.addEventListener("viewer:shown", function () {
        if (first) { first = false; loadThumbnails(); }
      });
      selectSeries(0);
      $("vw-viewport").focus({preventScroll: true});
    }, function (error) {
      if (!(error instanceof HttpError)) { showError("network"); return; }
      var reason = error.body && error.body.errors && error.body.errors.token && error.body.errors.token[0];
      if (error.status === 401) { showError(reason === "expired" || reason === "used" ? reason : "invalid"); }
      else if (error.status === 404) { showError("study"); }
      else { showError("invalid"); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
