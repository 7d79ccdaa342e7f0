// The talk page: call an agent over WebRTC with SIP.js (served by this console) and show
// the call's transcript while it goes. No inline script: the page's CSP allows this file,
// SIP.js's modules and connections to this origin only.
import { Inviter, SessionState, UserAgent } from "/talk/sipjs/index.js";

const form = document.getElementById("talk");
const state = document.getElementById("talk-state");
const callButton = document.getElementById("talk-call");
const hangupButton = document.getElementById("talk-hangup");
const audio = document.getElementById("talk-audio");
const list = document.getElementById("talk-transcript");
const link = document.getElementById("talk-call-link");
let ua = null;
let session = null;
let poller = null;
let refused = null; // the status code when Asterisk refused the call

function show(text) {
  state.textContent = text;
  form.dataset.state = text;
}

async function credential() {
  const body = new FormData();
  body.append("csrf", form.dataset.csrf);
  const resp = await fetch("/talk/credential", { method: "POST", body, credentials: "same-origin" });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

function line(cls, who, text) {
  const p = document.createElement("p");
  p.className = cls;
  const b = document.createElement("b");
  b.textContent = who;
  p.append(b, " ", text);
  return p;
}

async function refresh() {
  let call = null;
  try {
    const resp = await fetch("/talk/transcript", { credentials: "same-origin",
                                                   redirect: "error" });
    if (resp.ok) ({ call } = await resp.json());
  } catch {
    return; // logged out, or the console restarted: the call itself goes on
  }
  if (!call) return;
  const items = call.turns.map((t) => {
    const li = document.createElement("li");
    if (t.caller) li.append(line("caller", "Caller", t.caller));
    if (t.agent) li.append(line("agent", "Agent", t.agent));
    return li;
  });
  list.replaceChildren(...items);
  list.dataset.turns = String(call.turns.length);
  if (link.dataset.call !== call.id) {
    const a = document.createElement("a");
    a.href = `/calls/${encodeURIComponent(call.id)}`;
    a.textContent = `call ${call.id}`;
    link.replaceChildren(a);
    link.dataset.call = call.id;
  }
  if (call.ended && !session) stopPolling();
}

function stopPolling() {
  if (poller) clearInterval(poller);
  poller = null;
}

function ended() {
  session = null;
  callButton.disabled = false;
  hangupButton.disabled = true;
  if (ua) ua.stop().catch(() => {});
  ua = null;
  show(refused ? `refused (${refused})` : "ended");
  setTimeout(refresh, 1500);
  setTimeout(stopPolling, 5000);
}

async function call() {
  callButton.disabled = true;
  refused = null;
  list.replaceChildren();
  link.replaceChildren();
  delete link.dataset.call;
  try {
    show("getting a credential");
    const cred = await credential();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ua = new UserAgent({
      uri: UserAgent.makeURI(`sip:${cred.user}@switchboard.invalid`),
      authorizationUsername: cred.user,
      authorizationPassword: cred.password,
      transportOptions: { server: `${scheme}://${location.host}${cred.socket}` },
      sessionDescriptionHandlerFactoryOptions: {
        iceGatheringTimeout: 1000,
        peerConnectionConfiguration: { iceServers: [] },
      },
      logLevel: "warn",
    });
    show("connecting");
    await ua.start();
    const ext = document.getElementById("talk-agent").value;
    session = new Inviter(ua, UserAgent.makeURI(`sip:${ext}@switchboard.invalid`), {
      sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
    });
    session.stateChange.addListener((s) => {
      if (s === SessionState.Established) {
        audio.srcObject = session.sessionDescriptionHandler.remoteMediaStream;
        audio.play().catch(() => {});
        hangupButton.disabled = false;
        show("in call");
        poller = setInterval(refresh, 1000);
      } else if (s === SessionState.Terminated) {
        ended();
      }
    });
    show("calling");
    await session.invite({
      // called after the session has ended (and shown "ended"): say why instead
      requestDelegate: {
        onReject: (response) => {
          refused = response.message.statusCode;
          show(`refused (${refused})`);
        },
      },
    });
  } catch (err) {
    show(`failed: ${err.message || err}`);
    callButton.disabled = false;
    if (ua) ua.stop().catch(() => {});
    ua = null;
    session = null;
  }
}

function hangup() {
  if (!session) return;
  if (session.state === SessionState.Established) session.bye();
  else if (session.state === SessionState.Establishing) session.cancel();
}

callButton.addEventListener("click", call);
hangupButton.addEventListener("click", hangup);
show("idle");
