// A macro program (the JSON the API returns) written back as a YAML document, for the editor's form:
// block mappings and sequences, two spaces a level, strings plain only where YAML cannot read them
// as anything else, otherwise double-quoted with JSON's escapes (which YAML's double quotes accept)
// plus \uXXXX for the characters YAML treats as line breaks or does not print. The server parses
// and validates every document it is sent; this only has to write what it reads back unchanged.

// Plain: starts with a letter (any script), then letters, digits, spaces and harmless punctuation,
// no trailing space; never a word YAML 1.1 reads as a boolean or null.
const PLAIN = /^\p{L}[\p{L}\p{N}\p{M} _.\-()/+]*$/u;
const RESERVED = /^(?:y|n|yes|no|true|false|on|off|null)$/i;
const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Line breaks YAML knows besides \n and \r, C1 controls, DEL, the BOM, and lone surrogates.
const UNSAFE = /[\u007f-\u009f\u2028\u2029\ufeff]|[\ud800-\udfff]/gu;

function escapeUnsafe(char) {
  return `\\u${char.codePointAt(0).toString(16).padStart(4, "0")}`;
}

export function yamlString(text) {
  if (PLAIN.test(text) && !text.endsWith(" ") && !RESERVED.test(text)) return text;
  return JSON.stringify(text).replace(UNSAFE, escapeUnsafe);
}

function scalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("a macro holds no infinite numbers");
    return String(value);
  }
  return yamlString(String(value));
}

function key(name) {
  return KEY.test(name) && !RESERVED.test(name) ? name : yamlString(name);
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const isEmpty = (value) => (Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0);

// The lines of ``value`` (a mapping or a sequence) at ``indent`` spaces.
function block(value, indent) {
  const pad = " ".repeat(indent);
  const lines = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isObject(item) && !isEmpty(item)) {
        // The first key on the dash's line, the others under it.
        const inner = block(item, indent + 2);
        lines.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1));
      } else if (Array.isArray(item) && !isEmpty(item)) {
        lines.push(`${pad}-`, ...block(item, indent + 2));
      } else {
        lines.push(`${pad}- ${inline(item)}`);
      }
    }
    return lines;
  }
  for (const [name, item] of Object.entries(value)) {
    if ((isObject(item) || Array.isArray(item)) && !isEmpty(item)) {
      lines.push(`${pad}${key(name)}:`, ...block(item, indent + 2));
    } else {
      lines.push(`${pad}${key(name)}: ${inline(item)}`);
    }
  }
  return lines;
}

function inline(value) {
  if (Array.isArray(value)) return "[]";
  if (isObject(value)) return "{}";
  return scalar(value);
}

// The document of ``program``: ``version`` first, as the server writes it.
export function programYaml(program) {
  const { version = 1, ...rest } = program;
  return `${block({ version, ...rest }, 0).join("\n")}\n`;
}
