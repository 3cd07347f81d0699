// Progressive enhancement only: every page works without this file.
// A form submits once: its button is disabled while the request runs (the server also answers a second
// submission of the same form with the first one's result, by the form's key).
// Photos are checked before they are sent (count, type, total size), so a refusal costs no upload and the
// form keeps the chosen files; the server checks the same again (its page says the same without JS).
function photoProblem(input) {
  var files = input.files || [];
  var accepted = (input.getAttribute("accept") || "").split(",");
  var total = 0;
  if (files.length > Number(input.dataset.maxFiles)) return input.dataset.tooMany;
  for (var i = 0; i < files.length; i++) {
    if (accepted.indexOf(files[i].type) < 0) return input.dataset.wrongType.replace("{name}", files[i].name);
    total += files[i].size;
  }
  return total > Number(input.dataset.maxBytes) ? input.dataset.tooLarge : "";
}
function showPhotoProblem(input) {
  var problem = photoProblem(input);
  var box = document.getElementById("photos-problem");
  if (box) {
    box.textContent = problem;
    box.hidden = !problem;
  }
  if (problem) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  return problem;
}
document.addEventListener("change", function (event) {
  if (event.target.matches && event.target.matches("input[type=file][data-max-bytes]")) showPhotoProblem(event.target);
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  var photos = form.querySelector("input[type=file][data-max-bytes]");
  if (photos && showPhotoProblem(photos)) {
    event.preventDefault();
    photos.focus();
    return;
  }
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
// A return's page follows the return's event stream (htmx's sse extension, attributes from the server); a
// browser without EventSource polls instead (the part's data-poll), also in each part swapped in later.
function pollInstead(root) {
  if (window.EventSource || !root.querySelectorAll) return;
  var live = root.querySelectorAll("[sse-connect]");
  for (var i = 0; i < live.length; i++) live[i].removeAttribute("sse-connect");
  var parts = Array.prototype.slice.call(root.querySelectorAll("[data-poll]"));
  if (root.matches && root.matches("[data-poll]")) parts.push(root);
  for (var j = 0; j < parts.length; j++) parts[j].setAttribute("hx-trigger", parts[j].dataset.poll);
}
pollInstead(document);
document.addEventListener("htmx:beforeProcessNode", function (event) { pollInstead(event.target); });
