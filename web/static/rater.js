// Progressive enhancement: mark the reason a chosen answer needs, and refuse to send without it.
// The server checks the same (the engine on submit); without this script the page still works.
(function () {
  var form = document.getElementById("questionnaire");
  if (!form) return;
  function needs(select) {
    var wanted = (select.getAttribute("data-reason-for") || "").split("|");
    return select.value !== "" && wanted.indexOf(select.value) >= 0;
  }
  function reasonOf(select) { return form.querySelector('textarea[name="' + select.name + '::reason"]'); }
  function mark(select) {
    var box = reasonOf(select);
    if (box) { box.required = needs(select); box.parentNode.classList.toggle("reason-needed", needs(select)); }
  }
  form.querySelectorAll("select[data-reason-for]").forEach(function (s) {
    s.addEventListener("change", function () { mark(s); });
    mark(s);
  });
})();
