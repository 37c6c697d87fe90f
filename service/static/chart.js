// A small score chart on a canvas: normalised scores over time, the threshold as a dashed line,
// anomalous frames in red, the first `opening` frames (a clip's calibration) shaded. No library; used
// for live cameras and uploaded clips.
"use strict";

function drawChart(canvas, values, anomalies, threshold, opening = 0) {
  const ctx = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || canvas.width;
  const cssH = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(cssW * ratio)) {
    canvas.width = Math.round(cssW * ratio);
    canvas.height = Math.round(cssH * ratio);
  }
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const w = cssW, h = cssH, pad = { l: 34, r: 6, t: 6, b: 14 };
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#11151c";
  ctx.fillRect(0, 0, w, h);

  let lo = Math.min(0, threshold), hi = Math.max(threshold * 1.25, 1);
  for (const v of values) {
    if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  const span = hi - lo || 1;
  const x = (i) => pad.l + (values.length <= 1 ? 0 : (i / (values.length - 1)) * (w - pad.l - pad.r));
  const y = (v) => pad.t + (1 - (v - lo) / span) * (h - pad.t - pad.b);

  // calibration frames
  if (opening > 0) {
    ctx.fillStyle = "#262d38";
    ctx.fillRect(pad.l, pad.t, x(Math.min(opening, values.length - 1)) - pad.l, h - pad.t - pad.b);
  }

  // axis labels
  ctx.fillStyle = "#7d8794";
  ctx.font = "10px sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(hi.toFixed(1), pad.l - 4, pad.t + 8);
  ctx.fillText(lo.toFixed(1), pad.l - 4, h - pad.b);
  ctx.textAlign = "left";
  ctx.fillText(values.length + " frames", pad.l, h - 2);

  // threshold
  ctx.strokeStyle = "#e5534b";
  ctx.setLineDash([5, 4]);
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad.l, y(threshold));
  ctx.lineTo(w - pad.r, y(threshold));
  ctx.stroke();
  ctx.setLineDash([]);

  // scores
  ctx.strokeStyle = "#4fa3f7";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
  ctx.fillStyle = "#e5534b";
  values.forEach((v, i) => {
    if (anomalies[i]) ctx.fillRect(x(i) - 1.5, y(v) - 1.5, 3, 3);
  });
  canvas.dataset.points = String(values.length);
  canvas.dataset.calibrating = String(opening);
}
