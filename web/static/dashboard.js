// The merchant dashboard's charts (Apache ECharts, loaded by this page only). The tables under them hold the
// same numbers and stay, for screen readers and for browsers without JavaScript.
(function () {
  var source = document.getElementById("dashboard-data");
  if (!source || typeof echarts === "undefined") return;
  var data = JSON.parse(source.textContent);
  var ink = "#1a1a1a";
  function draw(id, option) {
    var box = document.getElementById(id);
    if (!box) return;
    box.hidden = false;
    var chart = echarts.init(box, null, { renderer: "svg" });
    chart.setOption(option);
    window.addEventListener("resize", function () { chart.resize(); });
  }
  draw("chart-days", {
    color: ["#0b5394", "#a4161a"],
    tooltip: { trigger: "axis" },
    legend: { top: 0, data: [data.labels.sales, data.labels.returns], textStyle: { color: ink } },
    grid: { left: 16, right: 16, top: 40, bottom: 8, containLabel: true },
    xAxis: { type: "category", data: data.days, axisLabel: { color: ink } },
    yAxis: { type: "value", minInterval: 1, axisLabel: { color: ink } },
    series: [
      { name: data.labels.sales, type: "bar", data: data.sales },
      { name: data.labels.returns, type: "bar", data: data.returns },
    ],
  });
  if (data.states.length) {
    draw("chart-states", {
      color: ["#0b5394"],
      tooltip: { trigger: "axis" },
      grid: { left: 16, right: 24, top: 16, bottom: 24, containLabel: true },
      xAxis: { type: "value", minInterval: 1, axisLabel: { color: ink } },
      yAxis: { type: "category", inverse: true, data: data.states, axisLabel: { color: ink } },
      series: [{ name: data.labels.count, type: "bar", data: data.stateCounts }],
    });
  }
})();
