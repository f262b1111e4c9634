/* The flavor-ml explorer: plain JS on the public API. Every text from the server or the user is put
   into the page with textContent (never innerHTML), so a name like <script> shows as typed. */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (className) { node.className = className; }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function say(node, text, isError) {
    node.textContent = text || "";
    node.classList.toggle("error", !!isError);
  }

  function limit() {
    var k = parseInt($("k").value, 10);
    return isFinite(k) && k > 0 ? Math.min(k, 100) : 10;
  }

  /* fetch JSON; resolves to {ok, status, body} and never rejects (network errors become status 0). */
  function call(method, path, payload) {
    var options = { method: method, headers: { "Accept": "application/json" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, status: response.status, body: body,
                 version: response.headers.get("X-Model-Version") };
      });
    }, function (error) {
      return { ok: false, status: 0, body: { error: "the server did not answer", detail: String(error) } };
    });
  }

  function problem(result) {
    var body = result.body || {};
    var text = body.error || ("HTTP " + result.status);
    if (body.detail && typeof body.detail === "string") { text += ": " + body.detail; }
    return text;
  }

  /* One ranked list: name (a button that looks it up), a bar and the score; "+" adds it to the recipe. */
  function showRanked(list, hits) {
    clear(list);
    var top = hits.reduce(function (m, h) { return Math.max(m, Math.abs(h.score)); }, 0) || 1;
    hits.forEach(function (hit) {
      var item = el("li");
      var row = el("div", null, "result");
      var name = el("button", hit.ingredient, "link name");
      name.type = "button";
      name.title = "look up " + hit.ingredient;
      name.addEventListener("click", function () { lookup(hit.ingredient); });
      var bar = el("span", null, "bar");
      var fill = el("span");
      fill.style.width = Math.round(100 * Math.max(0, hit.score) / top) + "%";
      bar.appendChild(fill);
      var add = el("button", "+", "small add");
      add.type = "button";
      add.title = "add " + hit.ingredient + " to the recipe";
      add.addEventListener("click", function () { addToRecipe(hit.ingredient); });
      row.appendChild(name);
      row.appendChild(bar);
      row.appendChild(el("span", Number(hit.score).toFixed(3), "score"));
      row.appendChild(add);
      item.appendChild(row);
      list.appendChild(item);
    });
  }

  /* "Did you mean" buttons for unknown names, from the API's error or /complete answer. */
  function showSuggestions(box, unknown, onPick) {
    clear(box);
    box.hidden = !unknown || unknown.length === 0;
    (unknown || []).forEach(function (entry) {
      var line = el("p");
      line.appendChild(el("span", "“" + entry.ingredient + "” is not in the model. "));
      var options = entry.did_you_mean || [];
      if (options.length === 0) {
        line.appendChild(el("span", "No close spelling found."));
      } else {
        line.appendChild(el("span", "Did you mean: "));
        options.forEach(function (name) {
          var pick = el("button", name, "link suggestion");
          pick.type = "button";
          pick.addEventListener("click", function () { onPick(entry.ingredient, name); });
          line.appendChild(pick);
        });
      }
      box.appendChild(line);
    });
  }

  // --- the model being served ---------------------------------------------------------------------------
  function showModel() {
    return call("GET", "model").then(function (result) {
      var status = $("model-status");
      var info = result.body || {};
      if (!result.ok) { say(status, "Cannot reach the API: " + problem(result), true); return; }
      if (!info.loaded) {
        var reason = info.last_reload_error ? info.last_reload_error.message : "no version is loaded yet";
        say(status, "No model is being served (" + info.name + "@" + info.alias + "): " + reason, true);
        return;
      }
      say(status, "Serving " + info.name + " version " + info.version + " (alias " + info.alias + "), " +
          info.ingredients + " ingredients, " + info.dimensions + " dimensions, loaded " +
          String(info.loaded_at).replace("T", " ").slice(0, 19) + " UTC.");
      status.setAttribute("data-version", String(info.version));
    });
  }

  // --- look up one ingredient -----------------------------------------------------------------------------
  function lookup(name) {
    name = (name || "").trim();
    if (!name) { return Promise.resolve(); }
    $("ingredient").value = name;
    var message = $("lookup-message");
    say(message, "Looking up “" + name + "”…");
    showSuggestions($("suggestions"), [], null);
    var k = limit();
    return call("GET", "similar/" + encodeURIComponent(name) + "?k=" + k).then(function (similar) {
      if (!similar.ok) {
        clear($("substitutes"));
        clear($("complements"));
        say(message, problem(similar), true);
        if (similar.body && similar.body.unknown) {
          showSuggestions($("suggestions"), similar.body.unknown, function (_, pick) { lookup(pick); });
        }
        return;
      }
      var canonical = similar.body.ingredient;
      showRanked($("substitutes"), similar.body.similar || []);
      return call("POST", "complete", { ingredients: [canonical], k: k }).then(function (complete) {
        if (!complete.ok) { say(message, problem(complete), true); return; }
        showRanked($("complements"), complete.body.complements || []);
        say(message, canonical === name ? "“" + canonical + "” (version " + similar.body.model_version + ")"
          : "“" + name + "” is “" + canonical + "” in the model (version " + similar.body.model_version + ")");
      });
    });
  }

  // --- complete a recipe ----------------------------------------------------------------------------------
  var recipe = [];

  function showRecipe(unknownNames) {
    var list = $("recipe");
    clear(list);
    recipe.forEach(function (name, index) {
      var chip = el("li", null, unknownNames && unknownNames.indexOf(name) !== -1 ? "unknown" : "");
      chip.appendChild(el("span", name, "name"));
      var remove = el("button", "×", "link remove");
      remove.type = "button";
      remove.title = "remove " + name;
      remove.addEventListener("click", function () { recipe.splice(index, 1); showRecipe(); complete(); });
      chip.appendChild(remove);
      list.appendChild(chip);
    });
  }

  function addToRecipe(name) {
    name = (name || "").trim();
    if (!name || recipe.indexOf(name) !== -1) { return Promise.resolve(); }
    recipe.push(name);
    showRecipe();
    return complete();
  }

  function complete() {
    var message = $("recipe-message");
    var list = $("completions");
    if (recipe.length === 0) {
      clear(list);
      say(message, "Add a few ingredients of a dish; the model suggests what goes with them.");
      showSuggestions($("recipe-suggestions"), [], null);
      return Promise.resolve();
    }
    say(message, "Completing " + recipe.length + " ingredient(s)…");
    return call("POST", "complete", { ingredients: recipe, k: limit() }).then(function (result) {
      var body = result.body || {};
      var unknown = body.unknown || [];
      showRecipe(unknown.map(function (u) { return u.ingredient; }));
      showSuggestions($("recipe-suggestions"), unknown, function (raw, pick) {
        recipe[recipe.indexOf(raw)] = pick;
        showRecipe();
        complete();
      });
      if (!result.ok) { clear(list); say(message, problem(result), true); return; }
      showRanked(list, body.complements || []);
      say(message, "What goes with " + body.ingredients.join(", ") + " (version " + body.model_version + "):");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("lookup-form").addEventListener("submit", function (event) {
      event.preventDefault();
      lookup($("ingredient").value);
    });
    $("recipe-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("recipe-input");
      addToRecipe(input.value);
      input.value = "";
    });
    $("complete").addEventListener("click", complete);
    $("clear").addEventListener("click", function () { recipe = []; showRecipe(); complete(); });
    showModel();
    complete();
  });
})();
