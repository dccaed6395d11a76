// Behaviour shared by the dashboard's pages, kept out of the HTML so the
// Content-Security-Policy can forbid inline scripts.

// <form data-confirm="Question?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// <button data-copy="#selector">: copy the selected element's text, saying so next to the button.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = document.querySelector(button.dataset.copy).textContent.trim();
  const status = button.parentElement.querySelector(".settings-copied");
  const done = (message) => { if (status) status.textContent = message; };
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(() => done("Copied."), () => done("Select the secret and copy it."));
  } else {
    done("Select the secret and copy it.");
  }
});
