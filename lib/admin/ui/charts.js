// Live time-series charts with uPlot: one chart per card, resized with its card.
import uPlot from './vendor/uPlot.esm.js'
import { h, count } from './dom.js'

export const COLORS = ['#38bdf8', '#f472b6', '#a3e635', '#fbbf24', '#c084fc', '#fb7185', '#2dd4bf', '#f97316']

/** room for the longest y label ("13.2 KiB" must not lose its first digit) */
function axisWidth (_u, values) {
  const longest = (values ?? []).reduce((n, v) => Math.max(n, String(v).length), 0)
  return Math.max(48, longest * 7 + 20)
}

export class LiveChart {
  /** series: [{ label, color, dash? }]; format: axis value formatter */
  constructor (title, series, format = count) {
    this.series = series
    this.format = format
    this.plotBox = h('div', { class: 'plot' })
    this.el = h('section', { class: 'card chart' }, h('h3', {}, title), this.plotBox)
    this.plot = undefined
    this.data = [[], ...series.map(() => [])]
    this.resize = new ResizeObserver(() => this.fit())
    this.resize.observe(this.plotBox)
  }

  make (width) {
    const axis = { stroke: '#94a3b8', grid: { stroke: 'rgba(148,163,184,0.12)' }, ticks: { stroke: 'rgba(148,163,184,0.2)' } }
    this.plot = new uPlot({
      width,
      height: 180,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [{ ...axis }, { ...axis, size: axisWidth, values: (_u, vals) => vals.map(v => this.format(v)) }],
      series: [{}, ...this.series.map(s => ({ label: s.label, stroke: s.color, width: 2, fill: s.color + '22', dash: s.dash, points: { show: false } }))]
    }, this.data, this.plotBox)
  }

  fit () {
    const width = Math.max(200, Math.floor(this.plotBox.clientWidth))
    if (this.plot === undefined) this.make(width)
    else this.plot.setSize({ width, height: 180 })
  }

  /** data: [times (s), ...one array per series] */
  set (data) {
    this.data = data
    if (this.plot === undefined) this.fit()
    this.plot.setData(data)
  }

  destroy () {
    this.resize.disconnect()
    this.plot?.destroy()
  }
}
