// Reload a page every <body data-refresh="SECONDS"> (0: never), keeping its URL and so its
// filters; skipped while someone types in a form field, and gone once paused (refresh=0).
(function () {
  var seconds = Number(document.body.getAttribute("data-refresh")) || 0;
  if (seconds <= 0) return;
  setInterval(function () {
    var focused = document.activeElement;
    if (!focused || !focused.matches("input, select, textarea")) window.location.reload();
  }, seconds * 1000);
})();
