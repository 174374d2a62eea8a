// ESLint (flat config): typescript-eslint's recommended rules on src/, test/ and scripts/;
// formatting is Prettier's job (eslint-config-prettier turns off the rules that overlap).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import jsdoc from 'eslint-plugin-jsdoc';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // Binary formats: control characters in patterns are meant.
      'no-control-regex': 'off',
    },
  },
  {
    // The project rule: public functions and classes in src/ carry a docstring (shapes and units,
    // errors thrown, the PS3 section or library followed). Only presence is checked
    // (jsdoc/require-jsdoc); the plugin's other rules stay off. Exported function declarations,
    // exported arrow functions and function expressions bound to consts, exported classes, and the
    // public methods and constructors of exported classes. Getters and setters are exempt (a
    // one-line accessor's name says it), and so are constructors without parameters; private
    // (`private` or #name) and protected methods are exempt because they are not API. A method
    // that implements a documented interface member may say only `/** @inheritDoc */`: TypeScript
    // then shows the interface's docstring (the rule cannot see an interface in another file).
    files: ['src/**/*.ts'],
    plugins: { jsdoc },
    rules: {
      'jsdoc/require-jsdoc': [
        'error',
        {
          publicOnly: true,
          require: {
            FunctionDeclaration: true,
            ArrowFunctionExpression: true,
            FunctionExpression: true,
            ClassDeclaration: true,
            ClassExpression: false,
            MethodDefinition: false,
          },
          contexts: [
            'MethodDefinition:not([accessibility="private"]):not([accessibility="protected"]):not([key.type="PrivateIdentifier"]):not([kind="get"]):not([kind="set"]) > FunctionExpression',
          ],
          checkConstructors: true,
          exemptEmptyConstructors: true,
          checkGetters: false,
          checkSetters: false,
          enableFixer: false,
        },
      ],
    },
  },
  prettier,
);
