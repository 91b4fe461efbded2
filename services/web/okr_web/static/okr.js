// Tells the server the browser's time zone (so dates read in local time) and wires the print button.
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  if (zone) {
    var field = document.querySelector("input[name=tz]");
    if (field) { field.value = zone; }
    if (document.cookie.indexOf("okr_tz=" + encodeURIComponent(zone)) < 0) {
      document.cookie = "okr_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  }
  var print = document.getElementById("print");
  if (print) { print.hidden = false; print.addEventListener("click", function () { window.print(); }); }
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
