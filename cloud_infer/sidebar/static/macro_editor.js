// The macro editor: steps as a list (names, thumbnails), parameters as a form, the raw YAML document,
// and the server's validation problems shown beside the step or field they are about.
//
// One document is saved: the textarea's. The form edits a copy of the program and writes it into the
// textarea (comments are not kept then); once the user edits the textarea by hand, the form is locked
// until they save or revert, so neither overwrites the other.

import { ApiError } from "/sidebar/static/api.js";
import { $, el } from "/sidebar/static/dom.js";
import { setText, t } from "/sidebar/static/i18n.js";
import { programYaml } from "/sidebar/static/macro_yaml.js";

const PARAM_TYPES = ["text", "money", "date", "number", "choice", "secret"];
const PARAM_FIELDS = ["name", "type", "label", "default", "choices", "required"];
const ACTIONS = new Set(["focus", "launch", "click", "type", "select", "press", "read", "find_text", "set_clipboard", "wait"]);
// A pydantic union's branch in an error path: "function-after[_has_what_its_action_needs(), Step]".
const BRANCH = /^function-[a-z]+\[.*\b(Step|Loop)\]$/;
const NAMED_IN_MESSAGE = /\b(?:step|loop) '([a-z][a-z0-9_]*)'/;

const isLoop = (entry) => entry !== null && typeof entry === "object" && "row_pattern" in entry;

// The API path of a frame's thumbnail from its key in the user's space (frames/<session>/<name>).
export function thumbPath(key) {
  const match = /^frames\/([A-Za-z0-9][A-Za-z0-9._-]*)\/([0-9]+\.[a-z]+)$/.exec(key ?? "");
  return match ? `/v1/frames/${encodeURIComponent(match[1])}/${match[2]}?thumb=true` : "";
}

function windowText(window) {
  if (!window) return "";
  return window.title_contains ? `${window.app_id} “${window.title_contains}”` : window.app_id;
}

function inputText(input) {
  if (!input) return "";
  if ("param" in input) return t("step.param", { name: input.param });
  if ("binding" in input) return t("step.binding", { name: input.binding });
  if ("item" in input) return t("step.item", { name: input.item });
  return `“${input.literal}”`;
}

// What a step does, in words: "Type into “Vendor” (entry) in chromium, from the parameter vendor".
export function describeStep(step) {
  const target = step.target;
  let what = "";
  if (target) {
    const name = target.name || target.label || target.id_attribute;
    what = [name ? `“${name}”` : "", target.role ? `(${target.role})` : "", t("step.in", { window: windowText(target.window) })]
      .filter(Boolean)
      .join(" ");
  } else if (step.window) {
    what = windowText(step.window);
  } else if (step.keys) {
    what = step.keys;
  } else if (step.executable) {
    what = step.executable;
  }
  if (step.action === "press" && step.keys && target) what = t("step.keysIn", { keys: step.keys, what });
  const from = step.input ? t("step.from", { input: inputText(step.input) }) : "";
  const saves = step.save_as ? t("step.keptAs", { name: step.save_as }) : "";
  const action = ACTIONS.has(step.action) ? t(`action.${step.action}`) : step.action;
  return `${action} ${what}${from}${saves}`.trim();
}

// Every {param: name} input of the program, so renaming a parameter renames its uses (by identity:
// two parameters briefly sharing a name while one is typed never merge their uses).
function paramUses(program) {
  const uses = [];
  const visit = (value) => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value !== null && typeof value === "object") {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "param" && typeof value.param === "string") uses.push(value);
      else Object.values(value).forEach(visit);
    }
  };
  visit(program.steps);
  visit(program.final_checks ?? []);
  return uses;
}

// Where a problem is: a step ("steps.3" or "steps.2.steps.0"), a parameter, or the whole document.
function locate(problem, program) {
  const parts = problem.path ? problem.path.split(".") : [];
  if (parts[0] === "steps" && /^\d+$/.test(parts[1] ?? "")) {
    let rest = parts.slice(2);
    let branch = "";
    if (BRANCH.test(rest[0] ?? "")) branch = BRANCH.exec(rest.shift())[1];
    let step = `steps.${parts[1]}`;
    if (rest[0] === "steps" && /^\d+$/.test(rest[1] ?? "")) {
      step += `.steps.${rest[1]}`;
      rest = rest.slice(2).filter((part) => !BRANCH.test(part));
    }
    return { kind: "step", step, branch, field: rest.join(".") };
  }
  if (parts[0] === "parameters" && /^\d+$/.test(parts[1] ?? "")) {
    return { kind: "param", index: Number(parts[1]), field: parts.slice(2).join(".") };
  }
  // A program-wide check names the step in its message: "step 'type_amount': unknown parameter …".
  const named = NAMED_IN_MESSAGE.exec(problem.message);
  if (named) {
    const step = stepPathById(program, named[1]);
    if (step) return { kind: "step", step, branch: "", field: "" };
  }
  return { kind: "document" };
}

function stepPathById(program, id) {
  for (const [i, entry] of program.steps.entries()) {
    if (entry.id === id) return `steps.${i}`;
    if (isLoop(entry)) {
      const j = entry.steps.findIndex((step) => step.id === id);
      if (j >= 0) return `steps.${i}.steps.${j}`;
    }
  }
  return "";
}

// A step that fails to validate is reported against both union branches (a step, a loop); the
// branch with fewer problems is the one the author meant, and only its problems are shown.
function closestBranch(located) {
  const counts = new Map();
  for (const { where } of located) {
    if (where.kind !== "step" || !where.branch) continue;
    const key = `${where.step}|${where.branch}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return located.filter(({ where }) => {
    if (where.kind !== "step" || !where.branch) return true;
    const other = where.branch === "Step" ? "Loop" : "Step";
    const mine = counts.get(`${where.step}|${where.branch}`);
    const theirs = counts.get(`${where.step}|${other}`);
    return theirs === undefined || mine < theirs || (mine === theirs && where.branch === "Step");
  });
}

function cleanMessage(message) {
  return message.replace(/^Value error, /, "");
}

export class MacroEditor {
  #api;
  #ui; // {confirm, status, error}
  #onSaved;
  #onDeleted;
  #view = null; // the MacroView shown
  #draft = null; // the program the form edits
  #uses = [];
  #handEdited = false;
  #errorSlots = new Map(); // "steps.2" / "parameters.0.name" -> <ul>

  constructor(api, ui, { onSaved, onDeleted }) {
    this.#api = api;
    this.#ui = ui;
    this.#onSaved = onSaved;
    this.#onDeleted = onDeleted;
  }

  start() {
    $("macro-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    $("macro-delete").addEventListener("click", () => this.delete());
    $("macro-revert").addEventListener("click", () => this.show(this.#view));
    $("macro-document").addEventListener("input", () => this.#lockForm(true));
  }

  get view() {
    return this.#view;
  }

  show(view) {
    this.#view = view;
    this.#draft = structuredClone(view.program);
    this.#uses = paramUses(this.#draft);
    $("macro-document").value = view.document;
    this.#lockForm(false);
    this.#renderSteps();
    this.#renderParams();
    this.#clearProblems();
  }

  // --- steps -----------------------------------------------------------------------------------

  #renderSteps() {
    this.#errorSlots = new Map();
    const items = this.#draft.steps.map((entry, i) => {
      if (!isLoop(entry)) return this.#stepItem(entry, `steps.${i}`, `${i + 1}`);
      const body = entry.steps.map((step, j) => this.#stepItem(step, `steps.${i}.steps.${j}`, `${i + 1}.${j + 1}`));
      const item = this.#stepItem(entry, `steps.${i}`, `${i + 1}`);
      item.append(el("ol", { class: "steps nested" }, ...body));
      return item;
    });
    $("macro-steps").replaceChildren(...items);
  }

  #stepItem(step, path, number) {
    const inputId = `step-name-${path.replaceAll(".", "-")}`;
    const errorsId = `${inputId}-errors`;
    const name = el("input", {
      id: inputId,
      "data-testid": "step-name",
      maxlength: 256,
      autocomplete: "off",
      placeholder: step.id,
      "aria-describedby": errorsId,
    });
    name.value = step.name ?? "";
    name.addEventListener("input", () => {
      if (name.value) step.name = name.value;
      else delete step.name;
      this.#formChanged();
    });
    const what = isLoop(step) ? t("step.loop", { over: step.over, pattern: step.row_pattern }) : describeStep(step);
    const thumb = el("img", { class: "thumb", alt: "", "data-testid": "step-thumb", width: 96, height: 60 });
    const source = thumbPath(step.thumbnail);
    if (source) {
      thumb.alt = t("step.thumbAlt", { n: number });
      this.#api.frame(source).then(
        (url) => (thumb.src = url),
        () => thumb.classList.add("thumb-none"),
      );
    } else {
      thumb.classList.add("thumb-none");
    }
    const errors = el("ul", { id: errorsId, class: "errors", "data-testid": "step-errors", hidden: true });
    this.#errorSlots.set(path, errors);
    this.#errorSlots.set(`${path}.name`, errors);
    return el(
      "li",
      { class: "step", "data-testid": "macro-step", dataset: { path, stepId: step.id } },
      thumb,
      el(
        "div",
        { class: "step-body" },
        setText(el("label", { for: inputId, class: "step-number" }), "step.number", { n: number }),
        name,
        el("p", { class: "step-what", "data-testid": "step-what" }, what),
        step.sensitive ? setText(el("span", { class: "badge badge-warn", "data-testid": "step-sensitive" }), "step.sensitive") : null,
        errors,
      ),
    );
  }

  // --- parameters ------------------------------------------------------------------------------

  #renderParams() {
    const params = this.#draft.parameters ?? [];
    $("macro-params").replaceChildren(...params.map((param, i) => this.#paramFields(param, i)));
    $("macro-params-empty").hidden = params.length > 0;
  }

  #paramFields(param, index) {
    const id = (field) => `param-${index}-${field}`;
    const slot = (field) => {
      const errors = el("ul", { id: `${id(field)}-errors`, class: "errors", "data-testid": "param-errors", hidden: true });
      this.#errorSlots.set(`parameters.${index}.${field}`, errors);
      return errors;
    };
    const labelled = (field, key, control) => {
      control.id = id(field);
      control.dataset.testid = `param-${field}`;
      control.setAttribute("aria-describedby", `${id(field)}-errors`);
      return el("div", { class: "field" }, setText(el("label", { for: id(field) }), key), control, slot(field));
    };
    const text = (value, attrs = {}) => {
      const input = el("input", { autocomplete: "off", ...attrs });
      input.value = value ?? "";
      return input;
    };
    const name = text(param.name, { maxlength: 64, pattern: "[a-z][a-z0-9_]{0,63}", spellcheck: "false" });
    const type = el("select", {}, ...PARAM_TYPES.map((t) => el("option", { value: t }, t)));
    type.value = param.type ?? "text";
    const label = text(param.label, { maxlength: 256 });
    const fallback = text(param.default, { maxlength: 4096 });
    const choices = text((param.choices ?? []).join(", "), { maxlength: 4096 });
    const required = el("input", { type: "checkbox" });
    required.checked = param.required !== false;
    const choicesField = labelled("choices", "param.choices", choices);

    const sync = () => {
      const secret = type.value === "secret";
      fallback.disabled = secret;
      fallback.placeholder = secret ? t("param.secretPlaceholder") : "";
      choicesField.hidden = type.value !== "choice";
    };
    const uses = this.#uses.filter((use) => use.param === param.name);
    name.addEventListener("input", () => {
      param.name = name.value;
      for (const use of uses) use.param = name.value;
      this.#formChanged();
    });
    type.addEventListener("change", () => {
      if (type.value === "text") delete param.type;
      else param.type = type.value;
      if (type.value === "secret") delete param.default;
      if (type.value !== "choice") delete param.choices;
      else param.choices = splitChoices(choices.value);
      sync();
      this.#formChanged();
    });
    label.addEventListener("input", () => {
      if (label.value) param.label = label.value;
      else delete param.label;
      this.#formChanged();
    });
    fallback.addEventListener("input", () => {
      if (fallback.value) param.default = fallback.value;
      else delete param.default;
      this.#formChanged();
    });
    choices.addEventListener("input", () => {
      param.choices = splitChoices(choices.value);
      this.#formChanged();
    });
    required.addEventListener("change", () => {
      if (required.checked) delete param.required;
      else param.required = false;
      this.#formChanged();
    });
    sync();
    const legendId = id("legend");
    const fieldset = el(
      "fieldset",
      { class: "param", "data-testid": "macro-param", dataset: { index }, "aria-labelledby": legendId },
      setText(el("legend", { id: legendId }), "param.legend", { n: index + 1 }),
      labelled("name", "param.name", name),
      labelled("type", "param.type", type),
      labelled("label", "param.label", label),
      labelled("default", "param.default", fallback),
      choicesField,
      el("div", { class: "field check" }, required, setText(el("label", { for: id("required") }), "param.required"), slot("required")),
    );
    required.id = id("required");
    required.dataset.testid = "param-required";
    const errors = el("ul", { class: "errors", "data-testid": "param-errors", hidden: true });
    this.#errorSlots.set(`parameters.${index}`, errors);
    fieldset.append(errors);
    return fieldset;
  }

  // --- the document ----------------------------------------------------------------------------

  #formChanged() {
    $("macro-document").value = programYaml(this.#draft);
  }

  #lockForm(locked) {
    this.#handEdited = locked;
    $("macro-fields").disabled = locked;
    $("macro-form-locked").hidden = !locked;
  }

  async save() {
    const view = this.#view;
    if (!view) return;
    const button = $("macro-save");
    button.disabled = true;
    this.#clearProblems();
    try {
      const saved = await this.#api.saveMacro(view.macro_id, $("macro-document").value);
      this.show(saved);
      this.#ui.status(t("macro.savedVersion", { version: saved.version, name: saved.program.name }));
      this.#onSaved(saved);
    } catch (error) {
      if (error instanceof ApiError && error.problems.length) this.#showProblems(error.problems);
      else this.#ui.error(error);
    } finally {
      button.disabled = !this.#api.can("manage");
    }
  }

  async delete() {
    const view = this.#view;
    if (!view) return;
    const count = view.versions.length;
    const ok = await this.#ui.confirm(t("macro.deleteConfirm", { name: view.program.name, n: count }), t("macro.deleteOk"));
    if (!ok) return;
    try {
      await this.#api.deleteMacro(view.macro_id);
      this.#ui.status(t("macro.deleted", { name: view.program.name }));
      this.#view = null;
      this.#onDeleted(view);
    } catch (error) {
      this.#ui.error(error);
    }
  }

  // --- problems --------------------------------------------------------------------------------

  #clearProblems() {
    for (const slot of new Set(this.#errorSlots.values())) {
      slot.replaceChildren();
      slot.hidden = true;
    }
    for (const control of document.querySelectorAll("#macro-form [aria-invalid]")) {
      control.removeAttribute("aria-invalid");
    }
    $("macro-document-errors").replaceChildren();
    $("macro-errors").hidden = true;
    $("macro-errors-list").replaceChildren();
  }

  #showProblems(problems) {
    const located = closestBranch(problems.map((problem) => ({ problem, where: locate(problem, this.#draft) })));
    const listed = [];
    for (const { problem, where } of located) {
      const message = cleanMessage(problem.message);
      let slot = null;
      let label = t("macro.document");
      if (where.kind === "step") {
        const field = where.field && where.field !== "name" ? `${where.field}: ` : "";
        slot = this.#errorSlots.get(where.field === "name" ? `${where.step}.name` : where.step) ?? null;
        const number = where.step.replace(/^steps\./, "").replace(".steps.", ".").split(".").map((n) => Number(n) + 1).join(".");
        label = t("step.number", { n: number });
        if (slot) this.#addError(slot, `${field}${message}`);
        if (slot && where.field === "name") this.#markInvalid(slot);
      } else if (where.kind === "param") {
        const field = PARAM_FIELDS.includes(where.field) ? where.field : "";
        slot = this.#errorSlots.get(field ? `parameters.${where.index}.${field}` : `parameters.${where.index}`) ?? null;
        label = `${t("param.legend", { n: where.index + 1 })}${where.field ? ` · ${where.field}` : ""}`;
        if (slot) {
          this.#addError(slot, field ? message : `${where.field ? `${where.field}: ` : ""}${message}`);
          if (field) this.#markInvalid(slot);
        }
      }
      if (!slot) {
        this.#addError($("macro-document-errors"), message);
        $("macro-document").setAttribute("aria-invalid", "true");
        $("macro-raw").open = true;
      }
      listed.push(el("li", {}, `${label}: ${message}`));
    }
    const count = located.length;
    setText($("macro-errors-title"), "macro.notSaved", { n: count });
    $("macro-errors-list").replaceChildren(...listed);
    $("macro-errors").hidden = false;
  }

  #addError(slot, text) {
    slot.append(el("li", { "data-testid": "macro-error" }, text));
    slot.hidden = false;
  }

  // The control an error list describes is marked invalid, so assistive tech announces it.
  #markInvalid(slot) {
    document.querySelector(`[aria-describedby="${slot.id}"]`)?.setAttribute("aria-invalid", "true");
  }
}

function splitChoices(text) {
  return text
    .split(",")
    .map((choice) => choice.trim())
    .filter(Boolean);
}
