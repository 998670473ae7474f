// A small SVG line chart of a numeric series (no library): the values of one field of
// the server's per-second samples, scaled to the largest.

const NS = 'http://www.w3.org/2000/svg';

/**
 * @param {number[]} values oldest first
 * @param {string} label accessible name
 * @returns {SVGSVGElement}
 */
export function lineChart(values, label) {
  const w = 300, h = 80, pad = 2;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.classList.add('chart');
  const max = Math.max(1, ...values);
  const n = Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => `${(i / n) * w},${h - pad - (v / max) * (h - 2 * pad)}`);
  if (pts.length > 0) {
    const area = document.createElementNS(NS, 'polygon');
    area.setAttribute('points', `0,${h} ${pts.join(' ')} ${w},${h}`);
    area.classList.add('area');
    svg.append(area);
    const line = document.createElementNS(NS, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.classList.add('line');
    svg.append(line);
  }
  return svg;
}
