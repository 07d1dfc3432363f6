// Sigil's passkey ceremonies (WebAuthn), for the forms marked `data-passkey`. Each such
// form is a real <form method="post"> with the CSRF token, hidden until this file sees that
// the browser has passkeys. On submit, it posts the form's csrf and req to the form's
// `data-options` URL, turns the JSON options into what navigator.credentials wants
// (base64url to ArrayBuffer), runs the ceremony, puts the result as JSON into the form's
// hidden `credential` field (ArrayBuffer to base64url) and submits the form: the server then
// answers with its usual pages and redirects. `data-passkey="sign-in"` also offers the
// passkeys in the user-name field's autofill (conditional mediation) where the browser can.
(function () {
  "use strict";

  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBuffer(item.id);
      return copy;
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json.publicKey);
    options.challenge = toBuffer(options.challenge);
    options.user = Object.assign({}, options.user, { id: toBuffer(options.user.id) });
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return { publicKey: options };
  }

  function requestOptions(json) {
    var options = Object.assign({}, json.publicKey);
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return { publicKey: options };
  }

  function credentialJson(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      if (response.getTransports) json.response.transports = response.getTransports();
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = toText(response.userHandle);
    }
    return JSON.stringify(json);
  }

  function field(form, name) {
    var input = form.querySelector('input[name="' + name + '"]');
    return input ? input.value : "";
  }

  function say(form, text) {
    var line = form.querySelector("[data-passkey-error]");
    if (!line) return;
    line.textContent = text;
    line.hidden = !text;
  }

  // The options, or null when the server sent the browser elsewhere (sign in first, a
  // step-up): then the browser goes there.
  function fetchOptions(form) {
    var body = new URLSearchParams();
    body.set("csrf", field(form, "csrf"));
    body.set("req", field(form, "req"));
    return fetch(form.getAttribute("data-options"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.ok && type.indexOf("application/json") === 0) return response.json();
      if (response.redirected) {
        window.location.assign(response.url);
        return null;
      }
      throw new Error(response.status === 403
        ? "This page has expired. Reload it and try again."
        : "Sigil could not start the passkey request (" + response.status + "). Try again.");
    });
  }

  function send(form, credential) {
    form.querySelector('input[name="credential"]').value = credentialJson(credential);
    form.submit();
  }

  function failed(form, error) {
    if (error && error.name === "AbortError") return;
    if (error && error.name === "NotAllowedError") {
      say(form, "No passkey was used: the request was cancelled or timed out.");
    } else if (error && error.name === "InvalidStateError") {
      say(form, "This passkey is registered already.");
    } else {
      say(form, (error && error.message) || "The passkey request failed.");
    }
  }

  // A conditional (autofill) request in progress on the sign-in page, if any; and whether
  // a button started a ceremony (the session holds one ceremony at a time).
  var conditional = null;
  var buttonUsed = false;

  function ceremony(form) {
    var kind = form.getAttribute("data-passkey");
    buttonUsed = true;
    say(form, "");
    var waitForConditional = Promise.resolve();
    if (conditional) {
      conditional.controller.abort();
      waitForConditional = conditional.started.catch(function () {});
      conditional = null;
    }
    return waitForConditional
      .then(function () { return fetchOptions(form); })
      .then(function (json) {
        if (!json) return null;
        if (kind === "register") return navigator.credentials.create(creationOptions(json));
        return navigator.credentials.get(requestOptions(json));
      })
      .then(function (credential) { if (credential) send(form, credential); })
      .catch(function (error) { failed(form, error); });
  }

  function startConditional(form) {
    if (!PublicKeyCredential.isConditionalMediationAvailable) return;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available || conditional || buttonUsed) return;
      var controller = new AbortController();
      var started = fetchOptions(form);
      conditional = { controller: controller, started: started };
      started
        .then(function (json) {
          if (!json || controller.signal.aborted) return null;
          var options = requestOptions(json);
          options.mediation = "conditional";
          options.signal = controller.signal;
          return navigator.credentials.get(options);
        })
        .then(function (credential) { if (credential) send(form, credential); })
        .catch(function (error) { if (!controller.signal.aborted) failed(form, error); });
    }).catch(function () {});
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!form.reportValidity || form.reportValidity()) ceremony(form);
    });
    if (form.getAttribute("data-passkey") === "sign-in") startConditional(form);
  });
})();
