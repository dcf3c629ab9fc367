// The exported model run in the page with ONNX Runtime Web, and its post-processing: operation by
// operation the twin of runtime/bodyparts_runtime (model.py, postprocess.py), so the page gets the
// result the Python runtime gets on the same image.
//
// Shapes: R = detections, C = part labels including background (0), M = side of the part branch's
// ROI output, Ms = side of the silhouette output, K = keypoints, Mk = side of the keypoint heatmaps,
// H x W = the image, h x w = the model input (after the test resize). Boxes are XYXY in pixels.
// Arrays are flat, row-major. float32 arithmetic is kept with Math.fround after each operation
// (a double operation rounded to float32 is the float32 operation for + - * /).
//
// window.BodypartsInBrowser = {createEngine, resizedShape, pillowBilinear, pastePart, pasteMask,
// decodeKeypoints, cubicResize}; an engine's run(imageData, threshold) gives the persons,
// draw(canvas, imageData, result, palette) draws them.
"use strict";

(function () {
  const f32 = Math.fround;

  // ---------------------------------------------------------------------------------------------
  // the test resize: Detectron2's ResizeShortestEdge with Pillow's bilinear filter

  // (h, w) of ResizeShortestEdge.get_output_shape: the shortest edge to `short`, the longest at
  // most `longest`, rounded half up (postprocess.resized_shape).
  function resizedShape(height, width, short, longest) {
    let scale = (short * 1.0) / Math.min(height, width);
    let newh;
    let neww;
    if (height < width) {
      newh = short * 1.0;
      neww = scale * width;
    } else {
      newh = scale * height;
      neww = short * 1.0;
    }
    if (Math.max(newh, neww) > longest) {
      scale = (longest * 1.0) / Math.max(newh, neww);
      newh *= scale;
      neww *= scale;
    }
    return [Math.trunc(newh + 0.5), Math.trunc(neww + 0.5)];
  }

  const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed point for 8-bit images
  const FIXED_ONE = 2 ** PRECISION_BITS;

  // Pillow's precompute_coeffs + normalize_coeffs_8bpc (bilinear): per output pixel the first
  // input pixel, the number of taps and their integer weights (postprocess._pillow_coefficients).
  function pillowCoefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1.0);
    const support = 1.0 * filterscale;
    const taps = Math.ceil(support) * 2 + 1;
    const first = new Int32Array(outSize);
    const count = new Int32Array(outSize);
    const weights = new Float64Array(outSize * taps);
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const k = [];
      let total = 0;
      for (let x = 0; x < xmax; x++) {
        const v = Math.max(0.0, 1.0 - Math.abs((x + xmin - center + 0.5) / filterscale));
        k.push(v);
        total += v;
      }
      first[xx] = xmin;
      count[xx] = xmax;
      for (let x = 0; x < xmax; x++) {
        const v = total !== 0.0 ? k[x] / total : k[x];
        weights[xx * taps + x] = Math.trunc((v >= 0 ? 0.5 : -0.5) + v * FIXED_ONE);
      }
    }
    return { first, count, weights, taps };
  }

  // One of Pillow's two passes over a uint8 plane (rows x cols): along the columns (`horizontal`)
  // or the rows, to `outSize` (postprocess._pillow_pass). Exact integer arithmetic.
  function pillowPass(plane, rows, cols, outSize, horizontal) {
    const inSize = horizontal ? cols : rows;
    const { first, count, weights, taps } = pillowCoefficients(inSize, outSize);
    const outRows = horizontal ? rows : outSize;
    const outCols = horizontal ? outSize : cols;
    const out = new Uint8Array(outRows * outCols);
    const half = FIXED_ONE / 2;
    for (let y = 0; y < outRows; y++) {
      for (let x = 0; x < outCols; x++) {
        const o = horizontal ? x : y;
        let acc = half;
        for (let t = 0; t < count[o]; t++) {
          const i = first[o] + t;
          const value = horizontal ? plane[y * cols + i] : plane[i * cols + x];
          acc += value * weights[o * taps + t];
        }
        const v = Math.floor(acc / FIXED_ONE);
        out[y * outCols + x] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
    return out;
  }

  // A uint8 (H, W) plane resized to (height, width) as PIL.Image.resize(..., BILINEAR):
  // columns first, then rows (postprocess.pillow_bilinear).
  function pillowBilinear(plane, inHeight, inWidth, height, width) {
    let out = plane;
    if (width !== inWidth) out = pillowPass(out, inHeight, inWidth, width, true);
    if (height !== inHeight) out = pillowPass(out, inHeight, width, height, false);
    return out;
  }

  // ImageData (RGBA) -> the model input: float32 (3, h, w) in the model's channel order, and the
  // resized uint8 planes (Runtime.raw).
  function modelInput(imageData, info) {
    const { width, height, data } = imageData;
    const order = info.input_format === "RGB" ? [0, 1, 2] : [2, 1, 0];
    const [h, w] = resizedShape(height, width, info.min_size_test, info.max_size_test);
    const tensor = new Float32Array(3 * h * w);
    const pixels = new Uint8Array(3 * h * w);
    for (let c = 0; c < 3; c++) {
      let plane = new Uint8Array(height * width);
      for (let i = 0; i < height * width; i++) plane[i] = data[4 * i + order[c]];
      if (h !== height || w !== width) plane = pillowBilinear(plane, height, width, h, w);
      pixels.set(plane, c * h * w);
      for (let i = 0; i < h * w; i++) tensor[c * h * w + i] = plane[i];
    }
    return { tensor, pixels, h, w };
  }

  // ---------------------------------------------------------------------------------------------
  // pasting ROI outputs into the image (postprocess._sample, paste_parts, paste_mask)

  // Source coordinates of grid_sample (align_corners=False) for normalised coordinates `coords`:
  // position, first index and the weights of the two taps.
  function sourceTaps(coords, size, border) {
    const n = coords.length;
    const low = new Int32Array(n);
    const w0 = new Float32Array(n);
    const w1 = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let pos = f32(f32(f32(f32(coords[i] + 1) * size) - 1) / 2);
      if (border) pos = Math.min(Math.max(pos, 0), size - 1);
      const fl = Math.floor(pos);
      low[i] = fl;
      w0[i] = f32(f32(fl + 1) - pos);
      w1[i] = f32(pos - fl);
    }
    return { low, w: [w0, w1] };
  }

  // grid_sample(maps (C, mh, mw), separable grid (gy, gx), bilinear) -> float32 (C, ny, nx);
  // `border`: border padding, else zeros (postprocess._sample).
  function sample(maps, channels, mh, mw, gy, gx, border) {
    const ny = gy.length;
    const nx = gx.length;
    const ty = sourceTaps(gy, mh, border);
    const tx = sourceTaps(gx, mw, border);
    const out = new Float32Array(channels * ny * nx);
    for (let dy = 0; dy < 2; dy++) {
      for (let dx = 0; dx < 2; dx++) {
        for (let i = 0; i < ny; i++) {
          const row = ty.low[i] + dy;
          const rowOk = row >= 0 && row < mh;
          const r = Math.min(Math.max(row, 0), mh - 1);
          const wy = ty.w[dy][i];
          for (let j = 0; j < nx; j++) {
            const col = tx.low[j] + dx;
            const ok = rowOk && col >= 0 && col < mw;
            const weight = ok ? f32(wy * tx.w[dx][j]) : 0;
            const c0 = Math.min(Math.max(col, 0), mw - 1);
            for (let c = 0; c < channels; c++) {
              const k = (c * ny + i) * nx + j;
              out[k] = f32(out[k] + f32(maps[(c * mh + r) * mw + c0] * weight));
            }
          }
        }
      }
    }
    return out;
  }

  // float32 (n,) normalised grid coordinates of the pixel centres start..start+n-1 in a box side
  // [lo, lo + extent) as paste_parts computes them.
  function partGrid(start, end, lo, extent) {
    const out = new Float32Array(Math.max(end - start, 0));
    for (let i = 0; i < out.length; i++) {
      const v = f32(f32(f32(start + i + 0.5) - lo) / extent);
      out[i] = f32(f32(v * 2) - 1);
    }
    return out;
  }

  // One person's part labels inside its box (paste_parts): the (C, M, M) probabilities resampled
  // at the pixel centres (border padding), arg-max, 0 outside the box. -> {labels uint8 (h, w),
  // y0, x0, height, width} or null when the box holds no pixel.
  function pastePart(probs, channels, side, box, height, width) {
    const [x0, y0, x1, y1] = box;
    const ix0 = Math.max(Math.trunc(x0), 0);
    const iy0 = Math.max(Math.trunc(y0), 0);
    const ix1 = Math.min(Math.ceil(x1), width);
    const iy1 = Math.min(Math.ceil(y1), height);
    if (ix1 <= ix0 || iy1 <= iy0) return null;
    const xs = partGrid(ix0, ix1, x0, f32(Math.max(x1 - x0, 1e-6)));
    const ys = partGrid(iy0, iy1, y0, f32(Math.max(y1 - y0, 1e-6)));
    const pasted = sample(probs, channels, side, side, ys, xs, true);
    const n = ys.length * xs.length;
    const labels = new Uint8Array(n);
    for (let i = 0; i < ys.length; i++) {
      const insideY = Math.abs(ys[i]) <= 1;
      for (let j = 0; j < xs.length; j++) {
        const p = i * xs.length + j;
        if (!insideY || !(Math.abs(xs[j]) <= 1)) continue;
        let best = 0;
        let bestValue = pasted[p];
        for (let c = 1; c < channels; c++) {
          if (pasted[c * n + p] > bestValue) {
            best = c;
            bestValue = pasted[c * n + p];
          }
        }
        labels[p] = best;
      }
    }
    return { labels, y0: iy0, x0: ix0, height: ys.length, width: xs.length };
  }

  // One silhouette (paste_mask, Detectron2's paste_masks_in_image on CPU): the (Ms, Ms)
  // probabilities over the box grown by a pixel, zero padding, >= threshold.
  // -> {mask uint8 (h, w) of 0 / 1, y0, x0, height, width}.
  function pasteMask(mask, side, box, height, width, threshold = 0.5) {
    const [x0, y0, x1, y1] = box;
    const ix0 = Math.max(Math.floor(x0) - 1, 0);
    const iy0 = Math.max(Math.floor(y0) - 1, 0);
    const ix1 = Math.min(Math.ceil(x1) + 1, width);
    const iy1 = Math.min(Math.ceil(y1) + 1, height);
    const grid = (start, end, lo, hi) => {
      const out = new Float32Array(Math.max(end - start, 0));
      const extent = f32(hi - lo);
      for (let i = 0; i < out.length; i++) {
        const v = f32(f32(f32(start + i + 0.5) - lo) / extent);
        out[i] = f32(f32(v * 2) - 1);
      }
      return out;
    };
    const gx = grid(ix0, ix1, x0, x1);
    const gy = grid(iy0, iy1, y0, y1);
    const pasted = sample(mask, 1, side, side, gy, gx, false);
    const out = new Uint8Array(pasted.length);
    for (let i = 0; i < pasted.length; i++) out[i] = pasted[i] >= threshold ? 1 : 0;
    return { mask: out, y0: iy0, x0: ix0, height: gy.length, width: gx.length };
  }

  // ---------------------------------------------------------------------------------------------
  // keypoints: OpenCV's bicubic resize and Detectron2's heatmaps_to_keypoints

  // OpenCV's interpolateCubic (A = -0.75) in float32.
  function cubicWeights(x) {
    const A = -0.75;
    const x1 = f32(x + 1);
    const c0 = f32(f32(f32(f32(f32(f32(A * x1) - f32(5 * A)) * x1) + f32(8 * A)) * x1) - f32(4 * A));
    const c1 = f32(f32(f32(f32(f32(f32(A + 2) * x) - f32(A + 3)) * x) * x) + 1);
    const y = f32(1 - x);
    const c2 = f32(f32(f32(f32(f32(f32(A + 2) * y) - f32(A + 3)) * y) * y) + 1);
    const c3 = f32(f32(f32(1 - c0) - c1) - c2);
    return [c0, c1, c2, c3];
  }

  // Per output pixel: the 4 source indices (clamped to the edge) and their weights, as
  // cv::resize(INTER_CUBIC) computes them.
  function cubicTaps(inSize, outSize) {
    const scale = 1 / (outSize / inSize);
    const index = new Int32Array(outSize * 4);
    const weight = new Float32Array(outSize * 4);
    for (let d = 0; d < outSize; d++) {
      let fx = f32((d + 0.5) * scale - 0.5);
      const sx = Math.floor(fx);
      fx = f32(fx - sx);
      const c = cubicWeights(fx);
      for (let k = 0; k < 4; k++) {
        index[d * 4 + k] = Math.min(Math.max(sx + k - 1, 0), inSize - 1);
        weight[d * 4 + k] = c[k];
      }
    }
    return { index, weight };
  }

  // cv2.resize(map float32 (mh, mw), (ow, oh), INTER_CUBIC) of one map -> float32 (oh, ow):
  // a pass along the rows, then along the columns, in float32.
  function cubicResize(map, mh, mw, oh, ow) {
    if (mh === oh && mw === ow) return Float32Array.from(map);
    const tx = cubicTaps(mw, ow);
    const ty = cubicTaps(mh, oh);
    const rows = new Float32Array(mh * ow);
    for (let y = 0; y < mh; y++) {
      for (let x = 0; x < ow; x++) {
        let v = 0;
        for (let k = 0; k < 4; k++) {
          const term = f32(map[y * mw + tx.index[x * 4 + k]] * tx.weight[x * 4 + k]);
          v = k === 0 ? term : f32(v + term);
        }
        rows[y * ow + x] = v;
      }
    }
    const out = new Float32Array(oh * ow);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let v = 0;
        for (let k = 0; k < 4; k++) {
          const term = f32(rows[ty.index[y * 4 + k] * ow + x] * ty.weight[y * 4 + k]);
          v = k === 0 ? term : f32(v + term);
        }
        out[y * ow + x] = v;
      }
    }
    return out;
  }

  // One person's (K, Mk, Mk) heatmaps and its box (model-input pixels) -> float32 (K, 3): x, y,
  // score (postprocess.decode_keypoints: bicubic resize to the box's size in whole pixels, arg-max,
  // softmax score over the map).
  function decodeKeypoints(maps, k, side, box) {
    const [x0, y0, x1, y1] = box;
    const w = Math.max(f32(x1 - x0), 1);
    const h = Math.max(f32(y1 - y0), 1);
    const wc = Math.ceil(w);
    const hc = Math.ceil(h);
    const stepX = f32(w / wc);
    const stepY = f32(h / hc);
    const out = new Float32Array(k * 3);
    for (let j = 0; j < k; j++) {
      const map = maps.subarray(j * side * side, (j + 1) * side * side);
      const roi = cubicResize(map, side, side, hc, wc);
      let pos = 0;
      for (let i = 1; i < roi.length; i++) if (roi[i] > roi[pos]) pos = i;
      const best = roi[pos];
      let pool = 0;
      for (let i = 0; i < map.length; i++) pool += f32(Math.exp(f32(map[i] - best)));
      const ys = Math.floor(pos / wc);
      const xs = pos - ys * wc;
      out[j * 3] = f32(f32(f32(xs + 0.5) * stepX) + x0);
      out[j * 3 + 1] = f32(f32(f32(ys + 0.5) * stepY) + y0);
      out[j * 3 + 2] = f32(1 / f32(pool));
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // the engine: the model in ONNX Runtime Web, post-processed as Runtime.persons

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error("cannot load " + src));
      document.head.append(script);
    });
  }

  async function fetchOk(url) {
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp;
  }

  class Engine {
    constructor(session, info, backend) {
      this.session = session;
      this.info = info;
      this.backend = backend; // "wasm" or "webgpu"
      this.partNames = (info.part_labels || []).slice(1);
      this.keypointNames = info.keypoint_names || [];
    }

    get label() {
      return "in browser (" + this.backend + ")";
    }

    // The persons with score >= threshold in the image's pixels (Runtime.persons) and the
    // image-level part map (Runtime.part_map); timings in ms.
    async run(imageData, threshold) {
      const t0 = performance.now();
      const { width, height } = imageData;
      const input = modelInput(imageData, this.info);
      const feeds = { image: new ort.Tensor("float32", input.tensor, [3, input.h, input.w]) };
      const t1 = performance.now();
      const out = await this.session.run(feeds);
      const t2 = performance.now();
      const result = this.postprocess(out, input, width, height, threshold);
      for (const name of Object.keys(out)) out[name].dispose?.();
      result.inputPixels = input.pixels;
      result.timings = { preprocess: t1 - t0, model: t2 - t1, postprocess: performance.now() - t2 };
      return result;
    }

    postprocess(out, input, width, height, threshold) {
      const boxesIn = out.boxes.data;
      const scoresIn = out.scores.data;
      const count = scoresIn.length;
      const scaleX = f32(width / input.w);
      const scaleY = f32(height / input.h);
      const limit = f32(threshold);
      const kept = [];
      for (let i = 0; i < count; i++) {
        const b = [0, 1, 2, 3].map((k) => f32(boxesIn[4 * i + k] * (k % 2 ? scaleY : scaleX)));
        b[0] = Math.min(Math.max(b[0], 0), width);
        b[2] = Math.min(Math.max(b[2], 0), width);
        b[1] = Math.min(Math.max(b[1], 0), height);
        b[3] = Math.min(Math.max(b[3], 0), height);
        if (f32(b[2] - b[0]) > 0 && f32(b[3] - b[1]) > 0 && scoresIn[i] >= limit) {
          kept.push({ index: i, box: b });
        }
      }
      const result = {
        engine: this.label,
        width,
        height,
        inputSize: [input.h, input.w],
        boxes: kept.map((p) => p.box),
        scores: kept.map((p) => scoresIn[p.index]),
        classes: kept.map((p) => (out.classes ? Number(out.classes.data[p.index]) : 0)),
        keypoints: null,
        parts: null,
        silhouettes: null,
      };
      const heatmaps = out.keypoint_heatmaps;
      if (heatmaps) {
        const [, k, side] = heatmaps.dims;
        result.keypoints = kept.map((p) => {
          const boxIn = Array.from(boxesIn.subarray(4 * p.index, 4 * p.index + 4));
          const maps = heatmaps.data.subarray(p.index * k * side * side, (p.index + 1) * k * side * side);
          const kps = decodeKeypoints(maps, k, side, boxIn);
          const points = [];
          for (let j = 0; j < k; j++) {
            points.push([f32(kps[3 * j] * scaleX), f32(kps[3 * j + 1] * scaleY), kps[3 * j + 2]]);
          }
          return points;
        });
      }
      const probs = out.part_probs;
      if (probs) {
        const [, c, side] = probs.dims;
        const size = c * side * side;
        result.parts = kept.map((p, n) =>
          pastePart(
            probs.data.subarray(p.index * size, (p.index + 1) * size),
            c,
            side,
            result.boxes[n],
            height,
            width,
          ),
        );
      }
      const masks = out.silhouettes;
      if (masks) {
        const side = masks.dims[2];
        const size = side * side;
        result.silhouettes = kept.map((p, n) =>
          pasteMask(
            masks.data.subarray(p.index * size, (p.index + 1) * size),
            side,
            result.boxes[n],
            height,
            width,
          ),
        );
      }
      result.partMap = partMap(result);
      return result;
    }
  }

  // uint8 (H, W) image-level part map: persons pasted in ascending score order (stable), only
  // part labels overwriting (Runtime.part_map).
  function partMap(result) {
    const out = new Uint8Array(result.height * result.width);
    if (!result.parts) return out;
    const order = result.scores.map((s, i) => i).sort((a, b) => result.scores[a] - result.scores[b] || a - b);
    for (const i of order) {
      const pasted = result.parts[i];
      if (!pasted) continue;
      for (let y = 0; y < pasted.height; y++) {
        for (let x = 0; x < pasted.width; x++) {
          const label = pasted.labels[y * pasted.width + x];
          if (label > 0) out[(pasted.y0 + y) * result.width + pasted.x0 + x] = label;
        }
      }
    }
    return out;
  }

  // The image with the part map blended in (half and half, colours of /info's legend), as
  // Runtime.draw draws it (boxes, keypoints), plus each silhouette's outline and each score, as the
  // server's drawing shows them; on `canvas`. `palette`: {label: [r, g, b]}.
  function draw(canvas, imageData, result, palette) {
    canvas.width = imageData.width;
    canvas.height = imageData.height;
    const g = canvas.getContext("2d");
    const shown = new ImageData(new Uint8ClampedArray(imageData.data), imageData.width, imageData.height);
    const px = shown.data;
    const labels = result.partMap;
    for (let i = 0; i < labels.length; i++) {
      const colour = labels[i] > 0 ? palette[labels[i]] : null;
      if (!colour) continue;
      for (let c = 0; c < 3; c++) px[4 * i + c] = Math.trunc(0.5 * px[4 * i + c] + 0.5 * colour[c]);
    }
    for (const s of result.silhouettes || []) outline(px, imageData.width, s);
    g.putImageData(shown, 0, 0);
    g.lineWidth = 1;
    g.font = "11px sans-serif";
    g.textBaseline = "bottom";
    result.boxes.forEach((box, i) => {
      const [x0, y0, x1, y1] = box.map((v) => Math.round(v));
      g.strokeStyle = g.fillStyle = "rgb(0,255,0)";
      g.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0);
      g.fillText(result.scores[i].toFixed(2), x0 + 2, Math.max(y0, 12));
      g.fillStyle = "rgb(255,0,0)";
      for (const [x, y] of (result.keypoints || [])[i] || []) {
        g.beginPath();
        g.arc(Math.round(x), Math.round(y), 2, 0, 2 * Math.PI);
        g.fill();
      }
    });
  }

  // White pixels on the edge of a pasted silhouette (inside, with a 4-neighbour outside).
  function outline(px, width, s) {
    const at = (y, x) => y >= 0 && x >= 0 && y < s.height && x < s.width && s.mask[y * s.width + x];
    for (let y = 0; y < s.height; y++) {
      for (let x = 0; x < s.width; x++) {
        if (!at(y, x) || (at(y - 1, x) && at(y + 1, x) && at(y, x - 1) && at(y, x + 1))) continue;
        const p = 4 * ((s.y0 + y) * width + s.x0 + x);
        px[p] = px[p + 1] = px[p + 2] = 255;
      }
    }
  }

  const LOAD_TIMEOUT_MS = 120000; // a session that never comes (a blocked worker) fails instead

  function withTimeout(promise, what) {
    let timer;
    const limit = new Promise((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(what + " took over " + LOAD_TIMEOUT_MS / 1000 + " s")),
        LOAD_TIMEOUT_MS,
      );
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
  }

  // The engine for /info's browser_model ({model, export_info, runtime}): ONNX Runtime Web
  // loaded, the model on WebGPU when the browser has an adapter, else WebAssembly.
  function createEngine(offer) {
    return withTimeout(loadEngine(offer), "loading the model");
  }

  async function loadEngine(offer) {
    if (typeof ort === "undefined") await loadScript(offer.runtime);
    const base = new URL(offer.runtime, document.baseURI);
    ort.env.wasm.wasmPaths = new URL(".", base).href;
    // threads need cross-origin isolation (SharedArrayBuffer); the server sends its headers
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    ort.env.logLevel = "error";
    const info = await (await fetchOk(offer.export_info)).json();
    const model = new Uint8Array(await (await fetchOk(offer.model)).arrayBuffer());
    const options = (provider) => ({ executionProviders: [provider], logSeverityLevel: 3 });
    if (navigator.gpu) {
      let adapter = null;
      try {
        adapter = await navigator.gpu.requestAdapter();
      } catch (err) {
        adapter = null;
      }
      if (adapter) {
        try {
          const session = await ort.InferenceSession.create(model.slice(), options("webgpu"));
          return new Engine(session, info, "webgpu");
        } catch (err) {
          console.warn("WebGPU unavailable for the model (" + err.message + "): WebAssembly instead");
        }
      }
    }
    const session = await ort.InferenceSession.create(model, options("wasm"));
    return new Engine(session, info, "wasm");
  }

  window.BodypartsInBrowser = {
    createEngine,
    draw,
    resizedShape,
    pillowBilinear,
    pastePart,
    pasteMask,
    decodeKeypoints,
    cubicResize,
  };
})();
