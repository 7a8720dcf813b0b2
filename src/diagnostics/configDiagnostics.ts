// Diagnostics of *.rlora.json files beyond the JSON Schema (which VS Code's JSON language service checks
// through package.json jsonValidation): the rules between fields and the document rules, from
// src/core/configProblems.ts, so the editor underlines what `validate` and the worker refuse. Reading
// only: this runs in Restricted Mode too.
import * as vscode from 'vscode';
import { configProblems } from '../core/configProblems';

const SOURCE = 'RiemannLoRA';
const isConfig = (doc: vscode.TextDocument) => doc.uri.scheme !== 'git' && doc.fileName.endsWith('.rlora.json');

export function registerConfigDiagnostics(context: vscode.ExtensionContext): vscode.DiagnosticCollection {
  const collection = vscode.languages.createDiagnosticCollection('riemannlora-config');
  const refresh = (doc: vscode.TextDocument) => {
    if (!isConfig(doc)) return;
    const text = doc.getText();
    collection.set(
      doc.uri,
      configProblems(text).map((p) => {
        const range = new vscode.Range(doc.positionAt(p.offset), doc.positionAt(p.offset + p.length));
        const d = new vscode.Diagnostic(range, p.message, vscode.DiagnosticSeverity.Error);
        d.source = SOURCE;
        return d;
      }),
    );
  };
  context.subscriptions.push(
    collection,
    vscode.workspace.onDidOpenTextDocument(refresh),
    vscode.workspace.onDidChangeTextDocument((e) => refresh(e.document)),
    vscode.workspace.onDidCloseTextDocument((doc) => collection.delete(doc.uri)),
  );
  for (const doc of vscode.workspace.textDocuments) refresh(doc);
  return collection;
}
