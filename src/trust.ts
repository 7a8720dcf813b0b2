// Workspace Trust: an untrusted workspace can browse runs and charts but never launch Python. The
// manifest declares `untrustedWorkspaces: limited`; commands stay invokable (palette, keybindings, other
// extensions), so every launching command checks here too.
import * as vscode from 'vscode';

export function isTrusted(): boolean {
  return vscode.workspace.isTrusted;
}

/**
 * Returns true when launching is allowed; otherwise tells the user why not (once per call) and offers to
 * manage trust. `action` completes "… is disabled", e.g. "Starting a run".
 */
export function requireTrust(action: string): boolean {
  if (vscode.workspace.isTrusted) return true;
  void vscode.window
    .showWarningMessage(
      `RiemannLoRA: ${action} is disabled in Restricted Mode: it launches Python from this workspace. You can still browse runs and charts. Trust the workspace to launch runs.`,
      'Manage Workspace Trust',
    )
    .then((choice) => {
      if (choice) void vscode.commands.executeCommand('workbench.trust.manage');
    });
  return false;
}
