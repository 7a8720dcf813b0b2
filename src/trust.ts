// Workspace Trust: an untrusted workspace can browse runs and charts but never launch Python and never
// change run files (the engine runs read-only there). The manifest declares `untrustedWorkspaces:
// limited`; commands stay invokable (palette, keybindings, other extensions), so every launching or
// writing command checks here too.
import * as vscode from 'vscode';

export function isTrusted(): boolean {
  return vscode.workspace.isTrusted;
}

/** Why an action needs trust: it launches Python, or it changes files (an untrusted workspace is read-only). */
export type TrustNeed = 'launch' | 'write';

const WHY: Record<TrustNeed, { because: string; trustTo: string }> = {
  launch: { because: 'it launches Python from this workspace', trustTo: 'launch runs' },
  write: { because: 'RiemannLoRA keeps an untrusted workspace read-only (it changes no run files)', trustTo: 'change runs' },
};

/**
 * Returns true when the action is allowed; otherwise tells the user why not (once per call) and offers
 * to manage trust. `action` completes "… is disabled", e.g. "Starting a run"; `need` says why it needs
 * trust (default: it launches Python).
 */
export function requireTrust(action: string, need: TrustNeed = 'launch'): boolean {
  if (vscode.workspace.isTrusted) return true;
  const { because, trustTo } = WHY[need];
  void vscode.window
    .showWarningMessage(
      `RiemannLoRA: ${action} is disabled in Restricted Mode: ${because}. You can still browse runs and charts. Trust the workspace to ${trustTo}.`,
      'Manage Workspace Trust',
    )
    .then((choice) => {
      if (choice) void vscode.commands.executeCommand('workbench.trust.manage');
    });
  return false;
}
