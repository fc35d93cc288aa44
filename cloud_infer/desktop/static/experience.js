// What the user experiences on one connection to the desktop ({rfb, socket, sessionId, api}); desk.js
// calls this at every (re)connect. Measuring lands here separately.
export function startExperience(_connection) {}
