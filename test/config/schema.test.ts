import t from 'tap';
import { Ajv } from 'ajv';
import { fleetSchema } from '../../src/config/index.js';

type Node = Record<string, unknown>;

/** Every property schema in the document, with its JSON path and whether its parent requires it. */
function properties(schema: Node): { path: string; node: Node; required: boolean }[] {
  const out: { path: string; node: Node; required: boolean }[] = [];
  const visit = (node: unknown, path: string) => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${path}[${i}]`));
    const obj = node as Node;
    const props = obj.properties as Record<string, Node> | undefined;
    const required = (obj.required as string[] | undefined) ?? [];
    for (const [key, child] of Object.entries(props ?? {})) {
      out.push({ path: `${path}.${key}`, node: child, required: required.includes(key) });
    }
    for (const [key, child] of Object.entries(obj)) if (key !== 'properties') visit(child, `${path}.${key}`);
    for (const [key, child] of Object.entries(props ?? {})) visit(child, `${path}.properties.${key}`);
  };
  visit(schema, '$');
  return out;
}

t.test('the schema is a draft-07 schema with an id, title and description', async (t) => {
  const schema = fleetSchema();
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  t.match(schema.$id, /^https:\/\/.+\/fleet\.schema\.json$/);
  t.type(schema.title, 'string');
  t.type(schema.description, 'string');
  const ajv = new Ajv({ strict: false });
  t.ok(ajv.validateSchema(schema), 'valid against the draft-07 meta-schema');
});

t.test('every field is documented and says its default', async (t) => {
  const props = properties(fleetSchema());
  t.ok(props.length > 50, `found ${props.length} fields`);
  for (const { path, node, required } of props) {
    if (typeof node.$ref === 'string') continue; // documented where the definition lives
    t.type(node.description, 'string', `${path} has a description`);
    const description = String(node.description);
    const documentedDefault =
      'default' in node || required || /Unset by default|Defaults to|Required/.test(description);
    t.ok(documentedDefault, `${path} has a default, is required, or says why it has none`);
  }
});

t.test('schema defaults are valid values of their own field', async (t) => {
  const ajv = new Ajv({ strict: false, discriminator: true, validateFormats: false });
  ajv.addKeyword('errorMessage');
  for (const { path, node } of properties(fleetSchema())) {
    if (!('default' in node) || typeof node.$ref === 'string') continue;
    const { default: value, ...rest } = node;
    t.ok(ajv.validate({ ...rest, definitions: fleetSchema().definitions }, value), `${path} default`);
  }
});
