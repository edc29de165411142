/* 小铺 pages: a little progressive JavaScript over the JSON API (API.md).
 * Tokens: the access token and the refresh token live in localStorage; the access token is
 * also the `xp_at` cookie so the server can render "my orders" pages. Writes always go
 * through the API with `Authorization: Bearer`, never through the cookie. */
(function () {
  "use strict";
  var AT = "xp_token", RT = "xp_refresh";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  var session = {
    token: function () { return localStorage.getItem(AT); },
    refreshToken: function () { return localStorage.getItem(RT); },
    save: function (s) {
      localStorage.setItem(AT, s.token);
      localStorage.setItem(RT, s.refresh_token);
      document.cookie = "xp_at=" + s.token + "; path=/; max-age=" + (s.expires_in || 900) + "; samesite=lax";
    },
    clear: function () {
      localStorage.removeItem(AT);
      localStorage.removeItem(RT);
      document.cookie = "xp_at=; path=/; max-age=0; samesite=lax";
    }
  };

  function newKey() {
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function ApiError(status, body, headers) {
    var err = (body && body.error) || {};
    this.status = status;
    this.code = err.code || "error";
    this.message = err.message || ("HTTP " + status);
    this.details = err.details;
    this.retryAfter = headers ? parseInt(headers.get("Retry-After") || "0", 10) : 0;
  }

  function refresh() {
    var rt = session.refreshToken();
    if (!rt) return Promise.reject(new ApiError(401, null));
    return fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: rt })
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) { session.clear(); throw new ApiError(resp.status, body, resp.headers); }
        session.save(body);
        return body;
      });
    });
  }

  /* api("POST", "/api/v1/orders", body, {key}) → parsed JSON; retries once after a refresh. */
  function api(method, path, body, opts, retried) {
    opts = opts || {};
    var headers = { "Content-Type": "application/json" };
    var token = session.token();
    if (token && !opts.anonymous) headers.Authorization = "Bearer " + token;
    if (opts.key) headers["Idempotency-Key"] = opts.key;
    return fetch(path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      if (resp.status === 401 && token && !retried && !opts.anonymous && session.refreshToken()) {
        return refresh().then(function () { return api(method, path, body, opts, true); });
      }
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) throw new ApiError(resp.status, data, resp.headers);
        return data;
      });
    });
  }

  function showError(root, message) {
    var el = $("[data-role=error]", root);
    if (!el) { alert(message); return; }
    el.textContent = message;
    el.hidden = !message;
  }

  function note(root, message) {
    var el = $("[data-role=note]", root);
    if (el) { el.textContent = message; el.hidden = !message; }
  }

  function explain(err) {
    if (!(err instanceof ApiError)) return "网络不太好，请稍后再试";
    if (err.status === 429) return "操作太频繁，请 " + (err.retryAfter || 60) + " 秒后再试";
    if (err.code === "invalid_code") return "验证码错误或已失效；新用户请填写昵称后再登录";
    if (err.status === 401) return "登录已过期，请重新登录";
    if (err.status === 422) {
      var d = err.details;
      var field = Array.isArray(d) && d[0] && (d[0].field || d[0].rule);
      var names = { phone: "手机号", "address.phone": "收货手机号", "address.name": "收货人", "address.line": "地址", code: "验证码", nickname: "昵称", quantity: "数量" };
      return (field && names[field] ? names[field] + "不正确：" : "") + err.message;
    }
    if (err.status === 409) return "当前状态不能这样操作：" + err.message;
    if (err.status >= 500) return "服务暂时不可用，请稍后再试";
    return err.message;
  }

  function busy(button, on) { if (button) button.disabled = !!on; }

  /* --- sign-in ----------------------------------------------------------------------------- */
  function setupSignin(form, onDone) {
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    var sendBtn = $("[data-action=send-code]", form);
    var timer = null;
    sendBtn.addEventListener("click", function () {
      var phone = form.elements.phone.value.trim();
      if (!/^1[3-9]\d{9}$/.test(phone.replace(/[\s-]/g, ""))) { showError(form, "请输入 11 位手机号"); return; }
      showError(form, ""); busy(sendBtn, true);
      api("POST", "/api/v1/auth/otp", { phone: phone, role: form.dataset.signinRole || "member" }, { anonymous: true })
        .then(function () {
          note(form, "验证码已发送，5 分钟内有效");
          var left = 60;
          sendBtn.textContent = left + " 秒";
          timer = setInterval(function () {
            left -= 1;
            if (left <= 0) { clearInterval(timer); sendBtn.textContent = "重新获取"; busy(sendBtn, false); }
            else sendBtn.textContent = left + " 秒";
          }, 1000);
          form.elements.code.focus();
        })
        .catch(function (err) { busy(sendBtn, false); showError(form, explain(err)); });
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var loginBtn = $("[data-action=login]", form);
      var body = {
        phone: form.elements.phone.value.trim(),
        code: form.elements.code.value.trim(),
        role: form.dataset.signinRole || "member"
      };
      var nickname = form.elements.nickname && form.elements.nickname.value.trim();
      if (nickname) body.nickname = nickname;
      if (!/^\d{6}$/.test(body.code)) { showError(form, "请输入 6 位验证码"); return; }
      showError(form, ""); busy(loginBtn, true);
      api("POST", "/api/v1/auth/login", body, { anonymous: true })
        .then(function (s) { session.save(s); busy(loginBtn, false); onDone(s, body.phone); })
        .catch(function (err) { busy(loginBtn, false); showError(form, explain(err)); });
    });
  }

  /* --- the landing page's checkout --------------------------------------------------------- */
  function setupCheckout(product) {
    var sheet = $("#checkout");
    if (!sheet) return;
    var qty = $("input[name=quantity]");
    var priceFen = parseInt(product.dataset.priceFen || "0", 10);
    var pendingKey = "xp_pending:" + location.pathname;
    var order = null;

    function yuan(fen) { return "¥" + Math.floor(fen / 100) + "." + ("0" + (fen % 100)).slice(-2); }
    function quantity() {
      var n = parseInt(qty.value, 10);
      if (!(n >= 1)) n = 1;
      if (n > 99) n = 99;
      qty.value = n;
      return n;
    }
    function refreshSubtotal() { $("[data-role=subtotal]", sheet).textContent = quantity() + " 件 · " + yuan(priceFen * quantity()); }
    function step(name) {
      $all("[data-step]", sheet).forEach(function (el) { el.hidden = el.dataset.step !== name; });
      sheet.hidden = false;
      document.body.classList.add("checking-out");
      sheet.scrollIntoView({ behavior: "smooth", block: "start" });
    }
    function remember() {
      sessionStorage.setItem(pendingKey, JSON.stringify({ quantity: quantity(), order: order }));
    }

    $("[data-action=less]").addEventListener("click", function () { qty.value = Math.max(1, quantity() - 1); refreshSubtotal(); });
    $("[data-action=more]").addEventListener("click", function () { qty.value = Math.min(99, quantity() + 1); refreshSubtotal(); });
    qty.addEventListener("change", refreshSubtotal);
    $("[data-action=close]", sheet).addEventListener("click", function () {
      sheet.hidden = true;
      document.body.classList.remove("checking-out");
    });

    function toAddress() {
      var form = $("#address");
      var saved = JSON.parse(localStorage.getItem("xp_address") || "null");
      if (saved) ["name", "phone", "line"].forEach(function (k) { if (!form.elements[k].value) form.elements[k].value = saved[k] || ""; });
      step("address");
    }

    $("[data-action=buy]").addEventListener("click", function () {
      refreshSubtotal(); remember();
      if (order) { step("pay"); return; }
      if (session.token()) toAddress();
      else step("signin");
    });

    setupSignin($("#signin", sheet), function (s, phone) {
      var form = $("#address");
      if (!form.elements.phone.value) form.elements.phone.value = phone;
      toAddress();
    });

    $("#address").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var form = ev.target, btn = $("[data-action=place-order]", form);
      var address = { name: form.elements.name.value.trim(), phone: form.elements.phone.value.trim(), line: form.elements.line.value.trim() };
      if (!address.name || !address.phone || !address.line) { showError(form, "请填写收货人、手机号和地址"); return; }
      var body = { items: [{ product_id: parseInt(product.dataset.productId, 10), quantity: quantity() }], address: address };
      if (product.dataset.shareCode) body.share_code = product.dataset.shareCode;
      else if (product.dataset.shopNumber) body.shop_number = product.dataset.shopNumber;
      var key = sessionStorage.getItem(pendingKey + ":key") || newKey();
      sessionStorage.setItem(pendingKey + ":key", key);
      showError(form, ""); busy(btn, true);
      api("POST", "/api/v1/orders", body, { key: key })
        .then(function (res) {
          busy(btn, false);
          localStorage.setItem("xp_address", JSON.stringify(address));
          sessionStorage.removeItem(pendingKey + ":key");
          order = res.orders[0];
          remember();
          $("[data-role=order-id]", sheet).textContent = order.id;
          $("[data-role=total]", sheet).textContent = yuan(order.total_fen);
          step("pay");
        })
        .catch(function (err) {
          busy(btn, false);
          if (err.status === 401) { session.clear(); step("signin"); }
          showError(err.status === 401 ? $("#signin") : form, explain(err));
        });
    });

    $("[data-action=pay]", sheet).addEventListener("click", function (ev) {
      var btn = ev.currentTarget, box = btn.parentNode;
      showError(box, ""); busy(btn, true);
      api("POST", "/api/v1/orders/" + order.id + "/pay", undefined, { key: "pay-" + order.id })
        .then(function () { sessionStorage.removeItem(pendingKey); location.href = "/my/orders/" + order.id; })
        .catch(function (err) { busy(btn, false); showError(box, explain(err)); });
    });

    /* back from a reload (or the sign-in): the share and the quantity are still here */
    var pending = JSON.parse(sessionStorage.getItem(pendingKey) || "null");
    if (pending) {
      qty.value = pending.quantity || 1;
      order = pending.order || null;
    }
    refreshSubtotal();
  }

  /* --- order pages ------------------------------------------------------------------------- */
  function setupOrder(article) {
    var id = article.dataset.orderId;
    function act(action, path, body) {
      var btn = $("[data-action=" + action + "]", article);
      if (!btn) return;
      btn.addEventListener("click", function () {
        var box = btn.parentNode;
        showError(box, ""); busy(btn, true);
        api("POST", path, body, { key: action + "-" + id })
          .then(function () { location.reload(); })
          .catch(function (err) { busy(btn, false); showError(box, explain(err)); });
      });
    }
    act("pay", "/api/v1/orders/" + id + "/pay");
    act("confirm", "/api/v1/orders/" + id + "/confirm");
    $all("form[data-form]", article).forEach(function (form) {
      var yuanInput = $("[data-yuan-for]", form);
      if (yuanInput) yuanInput.addEventListener("input", function () {
        form.elements[yuanInput.dataset.yuanFor].value = Math.round(parseFloat(yuanInput.value || "0") * 100);
      });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var btn = $("button[type=submit]", form), path, body;
        if (form.dataset.form === "inquiry") {
          body = { topic: form.elements.topic.value, text: form.elements.text.value.trim() };
          if (!body.text) { showError(form, "请写下你的问题"); return; }
          path = "/api/v1/orders/" + id + "/inquiries";
        } else {
          body = { amount_fen: parseInt(form.elements.amount_fen.value, 10), reason: form.elements.reason.value.trim() };
          if (!body.reason) { showError(form, "请写下退款原因"); return; }
          path = "/api/v1/orders/" + id + "/refunds";
        }
        showError(form, ""); busy(btn, true);
        api("POST", path, body, { key: newKey() })
          .then(function () { location.reload(); })
          .catch(function (err) { busy(btn, false); showError(form, explain(err)); });
      });
    });
  }

  function setupSigninPage(box) {
    /* the cookie expired but a refresh token is kept: renew quietly and reload */
    if (session.refreshToken()) {
      refresh().then(function () { location.reload(); }).catch(function () {});
    }
    setupSignin($("#signin", box), function () { location.reload(); });
  }

  function setupLogout(btn) {
    btn.addEventListener("click", function () {
      var rt = session.refreshToken();
      api("POST", "/api/v1/auth/logout", rt ? { refresh_token: rt } : {})
        .catch(function () {})
        .then(function () { session.clear(); location.href = "/"; });
    });
  }

  /* the workbenches (workbench.js) build on the same session, API client and sign-in */
  window.xp = { $: $, $all: $all, api: api, session: session, newKey: newKey, explain: explain,
    showError: showError, note: note, busy: busy, ApiError: ApiError, refresh: refresh };

  document.addEventListener("DOMContentLoaded", function () {
    var product = $("#product");
    if (product) setupCheckout(product);
    var article = $("#order");
    if (article) setupOrder(article);
    var needed = $("[data-page=signin-needed]");
    if (needed) setupSigninPage(needed);
    var logout = $("[data-action=logout]");
    if (logout) setupLogout(logout);
  });
})();
