// Progressive enhancement only: every page works without this file.
// A form submits once: its button is disabled while the request runs (the server also answers a second
// submission of the same form with the first one's result, by the form's key).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  var buttons = form.querySelectorAll("button[type=submit]");
  for (var i = 0; i < buttons.length; i++) buttons[i].setAttribute("aria-disabled", "true");
});
// Coming back to a page from the history: forms may be sent again (the key makes that harmless).
window.addEventListener("pageshow", function () {
  var forms = document.querySelectorAll("form[data-sent]");
  for (var i = 0; i < forms.length; i++) {
    delete forms[i].dataset.sent;
    var buttons = forms[i].querySelectorAll("button[aria-disabled]");
    for (var j = 0; j < buttons.length; j++) buttons[j].removeAttribute("aria-disabled");
  }
});
// Copy buttons (the auditor's command line): shown only where the clipboard can be written.
if (navigator.clipboard) {
  var copies = document.querySelectorAll("button[data-copy]");
  for (var k = 0; k < copies.length; k++) {
    copies[k].hidden = false;
    copies[k].addEventListener("click", function (event) {
      var source = document.getElementById(event.currentTarget.dataset.copy);
      if (source) navigator.clipboard.writeText(source.value || source.textContent);
    });
  }
}
