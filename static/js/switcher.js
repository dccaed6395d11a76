// The organization switcher of the top bar (a <details> menu): Escape closes it and gives the
// focus back to its toggle; a click elsewhere closes it.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const open = document.querySelector("details.switcher[open]");
  if (!open) return;
  open.removeAttribute("open");
  open.querySelector("summary").focus();
});
document.addEventListener("click", (event) => {
  const open = document.querySelector("details.switcher[open]");
  if (open && !open.contains(event.target)) open.removeAttribute("open");
});
