"use strict";
// Signs in with JSON (never a form post), so the SameSite=Strict cookie it gets back is the only credential.
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const reply = await fetch("/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    }),
  });
  if (reply.ok) {
    location.assign("/");
  } else {
    error.textContent = "Unknown user or wrong password.";
  }
});
